"""Test publisher process: stamped JointState / Image / Float64MultiArray streams.

Run as a script (``python test/pub_helper.py --joint-states /js@50 ...``) until SIGINT.
Every message carries its sequence number so a test can check that a bag has no holes:
JointState ``position[0]``, Image ``header.frame_id``, Float64MultiArray ``data[0]``.
``--silent TOPIC`` advertises a JointState publisher that never publishes;
``--latched TOPIC`` publishes one transient-local JointState at start.
"""
import argparse

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray


def _spec(text):
    topic, hz = text.rsplit('@', 1)
    return topic, float(hz)


class Publisher(Node):
    """Publishes the requested streams from timers."""

    def __init__(self, args):
        super().__init__('pub_helper')
        reliability = (ReliabilityPolicy.BEST_EFFORT if args.best_effort
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(depth=100, reliability=reliability)
        self.seq = {}
        for topic, hz in args.joint_states:
            self._stream(topic, hz, JointState, qos, self._joint_state)
        for topic, hz in args.image:
            self._stream(topic, hz, Image, qos, self._image)
        for topic, hz in args.floats:
            self._stream(topic, hz, Float64MultiArray, qos, self._floats)
        self.silent = [self.create_publisher(JointState, t, qos) for t in args.silent]
        latched_qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.latched = []
        for topic in args.latched:
            pub = self.create_publisher(JointState, topic, latched_qos)
            pub.publish(self._joint_state(7))
            self.latched.append(pub)
        self.size = args.image_size

    def _stream(self, topic, hz, cls, qos, make):
        pub = self.create_publisher(cls, topic, qos)
        self.seq[topic] = 0

        def tick():
            pub.publish(make(self.seq[topic]))
            self.seq[topic] += 1
        self.create_timer(1.0 / hz, tick)

    def _joint_state(self, seq):
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = ['a', 'b']
        msg.position = [float(seq), 0.5]
        msg.velocity = [0.0, 0.0]
        msg.effort = [0.0, 0.0]
        return msg

    def _image(self, seq):
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = str(seq)
        msg.height = msg.width = self.size
        msg.encoding = 'rgb8'
        msg.step = 3 * self.size
        msg.data = bytes([seq % 256]) * (3 * self.size * self.size)
        return msg

    def _floats(self, seq):
        return Float64MultiArray(data=[float(seq), 1.0])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--joint-states', type=_spec, action='append', default=[])
    parser.add_argument('--image', type=_spec, action='append', default=[])
    parser.add_argument('--floats', type=_spec, action='append', default=[])
    parser.add_argument('--silent', action='append', default=[])
    parser.add_argument('--latched', action='append', default=[])
    parser.add_argument('--image-size', type=int, default=16)
    parser.add_argument('--best-effort', action='store_true')
    args, ros_args = parser.parse_known_args()
    rclpy.init(args=ros_args)
    node = Publisher(args)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()

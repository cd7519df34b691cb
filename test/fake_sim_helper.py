"""A tiny stand-in for sim_robot: ``/sim/reset``, ``/sim/success``, ``/clock``, ``/joint_states``.

Run as a script. Sim time starts at 1000 s and advances with wall time (published on
``/clock`` at 100 Hz). Episode ``i`` (the i-th reset) turns ``/sim/success`` true
``--succeed-after[i]`` sim seconds after the reset, or never for ``never``. ``/sim/success``
is published at 20 Hz, ``/joint_states`` at 50 Hz with sim-time header stamps and the reset
count in ``position[0]``. Each reset is logged as ``reset <n>``.
"""
import argparse

from builtin_interfaces.msg import Time
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

SIM_START_NS = 1000 * 10**9


class FakeSim(Node):
    """Serves reset and publishes success, clock and joint states from wall-clock timers."""

    def __init__(self, succeed_after, stale_success=False):
        super().__init__('fake_sim')
        self.succeed_after = succeed_after
        self.stale_success = stale_success
        self.resets = 0
        self.t0 = self.get_clock().now().nanoseconds
        self.reset_at = None
        self.clock_pub = self.create_publisher(Clock, '/clock', 10)
        self.success_pub = self.create_publisher(Bool, '/sim/success', 10)
        self.js_pub = self.create_publisher(JointState, '/joint_states', 10)
        self.create_service(Trigger, '/sim/reset', self._reset)
        self.create_timer(0.01, self._pub_clock)
        self.create_timer(0.05, self._success)
        self.create_timer(0.02, self._joints)

    def sim_ns(self):
        return SIM_START_NS + self.get_clock().now().nanoseconds - self.t0

    def _stamp(self):
        ns = self.sim_ns()
        return Time(sec=ns // 10**9, nanosec=ns % 10**9)

    def _reset(self, request, response):
        self.resets += 1
        self.reset_at = self.sim_ns()
        self.get_logger().info(f'reset {self.resets}')
        response.success, response.message = True, f'reset {self.resets}'
        if self.stale_success:  # a True from the previous episode, arriving late
            self._stale = self.create_timer(0.1, self._publish_stale)
        return response

    def _publish_stale(self):
        self._stale.cancel()
        self.success_pub.publish(Bool(data=True))

    def _pub_clock(self):
        self.clock_pub.publish(Clock(clock=self._stamp()))

    def _success(self):
        ok = False
        if self.reset_at is not None and self.resets <= len(self.succeed_after):
            after = self.succeed_after[self.resets - 1]
            ok = after is not None and self.sim_ns() - self.reset_at >= after * 1e9
        self.success_pub.publish(Bool(data=ok))

    def _joints(self):
        msg = JointState(name=['a'], position=[float(self.resets)])
        msg.header.stamp = self._stamp()
        self.js_pub.publish(msg)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--succeed-after', default='0.5',
                        help='comma-separated sim seconds per episode, or "never"')
    parser.add_argument('--stale-success', action='store_true',
                        help='publish one success=True 0.1 s after each reset')
    args, ros_args = parser.parse_known_args()
    after = [None if x == 'never' else float(x) for x in args.succeed_after.split(',')]
    rclpy.init(args=ros_args)
    node = FakeSim(after, args.stale_success)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()

"""The controller node, a real process, on native-size bgr8 and JPEG cameras.

It drives a 32x32 policy from 320x240 bgr8 Image and JPEG CompressedImage cameras, with
joint states in another order than the policy's and an extra joint (test_controller_node's
Robot). Before the image pipeline (il_ros/images.py) it held forever with "image is
320x240, the policy needs 32x32 (WxH): HOLD".
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
from test_images import texture  # noqa: E402

from il_ros.robot import Camera  # noqa: E402


def two_camera_checkpoint(path) -> str:
    """A tiny random-init policy for test_controller_node's robot with front + wrist 32x32."""
    import torch
    from test_controller_node import HW, JOINTS

    from il_ros.models import build_policy, RobotSpec, save_checkpoint
    from il_ros.models.presets import preset
    torch.manual_seed(0)
    cams = ['front', 'wrist']
    cfg = preset('none_mse', cameras=cams, crop=None,
                 encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1], 'num_kp': 4,
                          'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]})
    spec = RobotSpec(joint_names=JOINTS, action_names=JOINTS, action_dim=3, proprio_dim=3,
                     cameras=cams, image_size=(HW, HW), control_rate_hz=20.0)
    stats = {'action': {'min': [-0.5] * 3, 'max': [0.5] * 3},
             'joint_pos': {'mean': [0.0] * 3, 'std': [0.5] * 3},
             **{f'image/{c}': {'mean': [0.5] * 3, 'std': [0.25] * 3} for c in cams}}
    return str(save_checkpoint(build_policy(cfg, spec, stats), path))


@pytest.mark.timeout(300)
def test_the_controller_node_drives_from_native_size_bgr8_and_jpeg_cameras(procs, ros_node,
                                                                            tmp_path):
    """Over real processes: 320x240 bgr8 + JPEG cameras feed a 32x32 policy; no HOLD.

    The joint states come in another order than the policy's, with an extra joint
    (test_controller_node.Robot).
    """
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage
    from test_controller_node import Robot, start

    from il_ros.ros.conversions import camera_msg
    front = Camera('front', '/camera/front/image_raw', 'Image', 'bgr8', 320, 240, 20.0)
    wrist = Camera('wrist', '/cam/wrist/image_raw/compressed', 'CompressedImage', 'jpeg',
                   320, 240, 20.0)
    rng = np.random.default_rng(7)
    frames = [texture(rng, 240, 320) for _ in range(4)]
    robot = Robot(ros_node)
    robot.camera = False                           # it publishes 32x32 rgb8: ours instead
    pub_wrist = ros_node.create_publisher(CompressedImage, wrist.topic, qos_profile_sensor_data)
    plain = robot.publish
    sent = []

    def publish(force=False):
        if time.monotonic() < robot._next_pub and not force:
            return
        plain(force)
        now = ros_node.get_clock().now().nanoseconds * 1e-9
        rgb = frames[len(sent) % len(frames)]
        robot.pub_img.publish(camera_msg(rgb, now, 'front', front))
        pub_wrist.publish(camera_msg(rgb[::-1], now, 'wrist', wrist))
        sent.append(now)
        robot.last_camera = time.monotonic()
    robot.publish = publish
    p = start(procs, robot, f'checkpoint:={two_camera_checkpoint(tmp_path / "ck")}',
              'enabled:=true', f'camera_topics:=["wrist={wrist.topic}"]')
    t0 = time.monotonic()
    robot.wait(lambda: robot.sources_since(t0)[-10:] == ['policy'] * 10, 60,
               'the policy driving from 320x240 bgr8 and JPEG cameras')
    cmds = np.array(robot.cmds_since(t0))
    assert cmds.shape[1] == 3 and np.all(np.isfinite(cmds)) and len(sent) >= 10
    bad = [line for line in procs.log(p).splitlines() if 'HOLD' in line and
           ('/camera/front' in line or wrist.topic in line) and 'yet: HOLD' not in line]
    assert not bad                              # only "no image on ... yet" before the first

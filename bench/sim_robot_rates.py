r"""Whether sim_robot keeps real time for a robot; prints JSON.

    python bench/sim_robot_rates.py --robot panda [--seconds 20] [--cameras front,wrist]

Starts ``sim_robot`` (real time, rtf 1, not lockstep) on a fresh ROS domain and listens
for ``--seconds`` of wall time. Reports, per stream (the joint states, each camera, /clock):
messages per wall second and per sim second, the sim seconds per wall second (1.0 = real
time), the sim time the node gave up catching up ("fell behind" warnings), and the node's
CPU use (user + system s per wall s, from /proc). Rendering is the costly part: a 320x240
camera costs far more than an 84x84 one.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parent.parent


def _cpu_s(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main(argv=None) -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--robot', default='sim_arm')
    ap.add_argument('--seconds', type=float, default=20.0)
    ap.add_argument('--cameras', default='', help='comma-separated (default: all)')
    args = ap.parse_args(argv)
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(101, 200))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image, JointState

    from il_ros.robot import load_robot
    robot = load_robot(args.robot)
    cams = [robot.camera(c) for c in args.cameras.split(',') if c] or robot.cameras
    log = Path(tempfile.mkdtemp(prefix='sim_robot_rates_')) / 'sim_robot.log'
    cmd = [sys.executable, '-m', 'il_ros.ros.sim_robot', '--ros-args', '-p',
           f'robot:={args.robot}']
    if args.cameras:
        cmd += ['-p', f'cameras:=[{args.cameras}]']
    with open(log, 'wb') as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=str(REPO),
                                start_new_session=True)
    rclpy.init()
    node = rclpy.create_node('sim_robot_rates')
    stamps: dict[str, list[float]] = {}

    def listen(topic, cls, qos):
        stamps[topic] = []
        node.create_subscription(cls, topic, lambda m: stamps[topic].append(
            time.monotonic()), qos)

    listen(robot.joint_states.topic, JointState, qos_profile_sensor_data)
    for c in cams:
        listen(c.topic, CompressedImage if c.compressed else Image, qos_profile_sensor_data)
    clock = []
    node.create_subscription(Clock, '/clock', lambda m: clock.append(
        (time.monotonic(), m.clock.sec + m.clock.nanosec * 1e-9)), 10)
    try:
        deadline = time.monotonic() + 120
        while not clock and time.monotonic() < deadline:      # started and publishing
            rclpy.spin_once(node, timeout_sec=0.1)
        for v in stamps.values():
            v.clear()
        clock.clear()
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            rclpy.spin_once(node, timeout_sec=0.05)
        wall = time.monotonic() - t0
        cpu = (_cpu_s(proc.pid) - cpu0) / wall
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(20)
    sim = clock[-1][1] - clock[0][1] if len(clock) > 1 else 0.0
    text = log.read_text(errors='replace')
    given_up = [float(x) for x in re.findall(r'\(([\d.]+) s in all\)', text)]
    want = {robot.joint_states.topic: robot.joint_states.rate_hz,
            **{c.topic: c.rate_hz for c in cams}}
    out = {
        'robot': robot.name, 'cameras': [f'{c.name} {c.width}x{c.height} {c.encoding}'
                                         for c in cams],
        'wall_s': round(wall, 2), 'sim_s_per_wall_s': round(sim / wall, 3),
        'sim_s_given_up': given_up[-1] if given_up else 0.0,
        'node_cpu_s_per_wall_s': round(cpu, 2), 'nproc': os.cpu_count(),
        'streams': {t: {'configured_hz': want[t], 'per_wall_s': round(len(v) / wall, 1),
                        'per_sim_s': round(len(v) / sim, 1) if sim else None}
                    for t, v in stamps.items()},
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

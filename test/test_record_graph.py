"""End to end: `il-ros record` runs the record graph and rosbags reads the bags back.

`il-ros record` runs sim_robot, scripted teleop and the recorder as separate processes over
DDS; the bags they write are read back with rosbags, not with our own code.

Per task, 3 episodes. In every bag: each configured topic is present, images have the right
shape and encoding, rates are within 10% of the configured ones, there are no gaps, and the
metadata passes Humble's, Jazzy's and Kilted's readers (test_bag_metadata.py).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from il_ros.config import load_yaml
from il_ros.resources import config_file
from il_ros.robot import DEFAULT_ROBOT, load_robot
from il_ros.sim import TASKS
from test_bag_metadata import assert_every_distro_reads  # noqa: I100

EPISODES = 3
TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def _stamps(reader, conns):
    """Header stamps (s) of every message on ``conns``, in log order, plus the messages."""
    out, msgs = [], []
    for conn, _, raw in reader.messages(connections=conns):
        msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
        out.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        msgs.append(msg)
    return np.array(out), msgs


def _check_rate(stamps, rate_hz, what):
    assert len(stamps) > 5, f'{what}: only {len(stamps)} messages'
    dt = np.diff(stamps)
    assert np.all(dt > 0), f'{what}: stamps not increasing'
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(measured - rate_hz) <= 0.1 * rate_hz, f'{what}: {measured:.2f} Hz vs {rate_hz}'
    assert dt.max() < 1.5 / rate_hz, f'{what}: gap of {dt.max():.3f}s at {rate_hz} Hz'


@pytest.mark.parametrize('task', TASKS)
def test_record_scripted_episodes(task, tmp_path):
    out = tmp_path / 'bags'
    cmd = [sys.executable, '-m', 'il_ros.cli', 'record', '--task', task, '--episodes',
           str(EPISODES), '--out', str(out), '--rtf', '4', '--timeout', '400']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=450)
    assert res.returncode == 0, f'{res.stdout[-3000:]}\n{res.stderr[-3000:]}'

    sim_params = load_yaml(config_file('sim_robot.yaml'))['sim_robot']['ros__parameters']
    robot = load_robot(DEFAULT_ROBOT)            # the camera and joint-state facts
    cam = robot.camera('front')
    cam_rate, js_rate, size = cam.rate_hz, robot.joint_states.rate_hz, (cam.height, cam.width)
    metas = sorted(out.glob('episode_*.json'))
    assert len(metas) == EPISODES, [m.name for m in metas]
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        assert meta['status'] == 'complete', meta
        assert meta['success'] is True, f'{meta_path.name}: scripted expert failed'
        bag = meta_path.with_suffix('')
        assert_every_distro_reads(bag)           # version 8: Humble, Jazzy and Kilted read it
        with Reader(bag) as reader:
            topics = {c.topic: c for c in reader.connections}
            for topic in ('/camera/front/image_raw', '/joint_states', '/il/command',
                          '/il/teleop/command', '/sim/state', '/sim/success'):
                assert topic in topics, f'{bag.name}: {topic} missing; has {sorted(topics)}'
            img_stamps, imgs = _stamps(reader, [topics['/camera/front/image_raw']])
            _check_rate(img_stamps, cam_rate, f'{bag.name} camera')
            for m in imgs[:3] + imgs[-3:]:
                assert (m.height, m.width, m.encoding) == (*size, 'rgb8')
                assert m.step == m.width * 3 and len(m.data) == m.step * m.height
            js_stamps, js = _stamps(reader, [topics['/joint_states']])
            _check_rate(js_stamps, js_rate, f'{bag.name} joint_states')
            assert len(js[0].name) == len(js[0].position) == len(js[0].effort) > 0
            n_cmd = sum(1 for _ in reader.messages(connections=[topics['/il/command']]))
            duration = img_stamps[-1] - img_stamps[0]
            state_rate = sim_params.get('state_rate_hz', robot.control_rate_hz)
            assert n_cmd >= 0.8 * duration * state_rate, n_cmd
        for topic, rate in (('/camera/front/image_raw', cam_rate), ('/joint_states', js_rate)):
            stats = meta['topics'][topic]       # the recorder was told the sim's rates
            assert (stats['expected_rate_hz'], stats['expected_rate_source']) == (
                rate, 'parameter'), stats
            assert stats['lost'] == 0, stats
        for topic, stats in meta['topics'].items():
            gaps = stats.get('gaps') or []
            if stats.get('time_source') == 'receive':
                # Headerless topics are stamped on arrival with the recorder's sim clock, which
                # can slip one tick on a loaded machine (seen in CI: one 2-period interval of
                # /sim/state); a lost message or a stalled stream is longer than that.
                period = stats['median_period_s']
                gaps = [g for g in gaps if g['length_s'] > 2.5 * period]
            assert not gaps, f'{bag.name}: {topic} has gaps {gaps}'

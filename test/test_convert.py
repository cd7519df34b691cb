"""`il-ros convert` on bags the package did not record, bad bags, appends and determinism.

Bags are written by il_ros.data.synthetic_bag with rosbags alone; every value is a known
function of time, and the expected frame values are computed from the message times read
back from the bag with rosbags (not from our reader).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from il_ros import keys
from il_ros.data.convert import convert
from il_ros.data.store import Dataset
from il_ros.data.synthetic_bag import (SyntheticBagSpec, action_value, image_value,
                                       joint_value, write_synthetic_bag)
from il_ros.data.topic_map import ConvertConfig, TopicMap

FOREIGN = SyntheticBagSpec(
    cameras={'front': '/robot/cam_front/image_raw', 'wrist': '/robot/cam_wrist/compressed'},
    compressed=('wrist',), joint_states_topic='/robot/joint_states',
    action_topic='/robot/arm/commands', shuffle_joints=True, jitter=0.1,
    camera_gap=(1.0, 1.5), duration=3.0, image_hw=(60, 80), seed=3)
FOREIGN_TOPICS = TopicMap(
    cameras={'front': '/robot/cam_front/image_raw', 'wrist': '/robot/cam_wrist/compressed'},
    joint_states={'topic': '/robot/joint_states', 'joints': ['j2', 'j0', 'j1']},
    action={'topic': '/robot/arm/commands', 'type': 'float64_multi_array'},
    control_source=None)


def _times(bag, topic):
    with AnyReader([bag]) as r:
        conns = [c for c in r.connections if c.topic == topic]
        return np.array([t * 1e-9 for _, t, _ in r.messages(connections=conns)])


def _stamps(bag, topic):
    with AnyReader([bag]) as r:
        conns = [c for c in r.connections if c.topic == topic]
        out = []
        for c, _, raw in r.messages(connections=conns):
            s = r.deserialize(raw, c.msgtype).header.stamp
            out.append(s.sec + s.nanosec * 1e-9)
        return np.array(out)


def test_foreign_bag_converts_correctly(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'bags' / 'run1', FOREIGN)
    # A 0.5 s camera gap is 10 periods at 20 Hz: tolerated here on purpose (stale_reject=12).
    cfg = ConvertConfig(topics=FOREIGN_TOPICS, rate_hz=20.0, image_size=(48, 64),
                        stale_reject=12)
    reports = convert([tmp_path / 'bags'], tmp_path / 'ds', cfg, progress=False)
    assert [r.status for r in reports] == ['converted'], reports
    rep = reports[0]
    assert any('/robot/cam_front/image_raw' in w and 'stale' in w for w in rep.warnings)
    assert rep.time_sources['/robot/arm/commands'].startswith('receive')
    assert rep.time_sources['/robot/joint_states'] == 'header'

    ds = Dataset(tmp_path / 'ds')
    ep = ds.episode(0)
    ticks = ep['time']
    assert np.allclose(np.diff(ticks), 0.05)
    # Joints: the newest sample at or before each tick, reordered to the topic map's order.
    js_t = _stamps(bag, '/robot/joint_states')
    i = np.searchsorted(js_t, ticks + 1e-9, side='right') - 1
    expected = np.stack([joint_value(js_t[i] - FOREIGN.start, j) for j in (2, 0, 1)], 1)
    np.testing.assert_allclose(ep[keys.OBS_JOINT_POS], expected, atol=1e-6)
    # Actions: receive-timed, with half a period of lookahead.
    a_t = _times(bag, '/robot/arm/commands')
    i = np.searchsorted(a_t, ticks + 0.025 + 1e-9, side='right') - 1
    expected = np.stack([action_value(a_t[k] - FOREIGN.start, 3) for k in i])
    np.testing.assert_allclose(ep[keys.ACTION], expected, atol=1e-6)
    # Images: right size; the front camera holds its last frame through the gap.
    front, wrist = ep[keys.image_key('front')], ep[keys.image_key('wrist')]
    assert front.shape == (ticks.size, 48, 64, 3) and wrist.shape == front.shape
    cam_t = _stamps(bag, '/robot/cam_front/image_raw')
    i = np.searchsorted(cam_t, ticks + 1e-9, side='right') - 1
    grey = np.array([image_value(cam_t[k] - FOREIGN.start, (60, 80))[0, 0, 0] for k in i])
    np.testing.assert_array_equal(front[:, 0, 0, 0], grey)
    in_gap = (ticks - FOREIGN.start > 1.05) & (ticks - FOREIGN.start < 1.45)
    assert in_gap.sum() >= 7 and len(set(front[in_gap, 0, 0, 0])) == 1
    # The jpeg camera is decoded (its grey level is close to the true one).
    cam_t = _stamps(bag, '/robot/cam_wrist/compressed')
    i = np.searchsorted(cam_t, ticks + 1e-9, side='right') - 1
    grey = np.array([image_value(cam_t[k] - FOREIGN.start, (60, 80), 1)[0, 0, 0] for k in i])
    assert np.abs(wrist[:, 0, 0, 0].astype(int) - grey).max() <= 4


def test_default_staleness_rejects_the_gap(tmp_path):
    write_synthetic_bag(tmp_path / 'bags' / 'run1', FOREIGN)
    cfg = ConvertConfig(topics=FOREIGN_TOPICS)
    (rep,) = convert([tmp_path / 'bags'], tmp_path / 'ds', cfg, progress=False)
    assert rep.status == 'rejected'
    assert '/robot/cam_front/image_raw' in rep.reason and 'stale' in rep.reason
    # The time of the worst tick, in the bag's clock: inside the gap (1001.0 .. 1001.5 + jitter).
    worst = float(re.search(r't=([0-9.]+)s', rep.reason).group(1))
    assert 1001.0 < worst < 1001.56, rep.reason


def test_bad_bags_are_named_and_the_rest_convert(tmp_path):
    bags = tmp_path / 'bags'
    write_synthetic_bag(bags / 'a_good', SyntheticBagSpec(seed=1))
    write_synthetic_bag(bags / 'b_nan', SyntheticBagSpec(nan_joint_at=1.2, seed=2))
    write_synthetic_bag(bags / 'c_no_action',
                        SyntheticBagSpec(action_topic='/something/else', seed=3))
    trunc = write_synthetic_bag(bags / 'd_truncated', SyntheticBagSpec(seed=4))
    mcap = next(trunc.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    write_synthetic_bag(bags / 'e_good_sqlite', SyntheticBagSpec(storage='sqlite3', seed=5))
    res = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'convert', str(bags), '--out',
                          str(tmp_path / 'ds')], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr  # 1: some bags were rejected
    by_name = {r['bag'].rsplit('/', 1)[1]: r for r in json.loads(
        (tmp_path / 'ds' / 'conversion_report.json').read_text())['runs'][-1]['episodes']}
    assert by_name['a_good']['status'] == by_name['e_good_sqlite']['status'] == 'converted'
    nan = by_name['b_nan']
    assert nan['status'] == 'rejected' and 'NaN' in nan['reason']
    assert 'b_nan' in nan['reason'] and '/joint_states' in nan['reason']
    assert 't=1001.2' in nan['reason']
    no_action = by_name['c_no_action']
    assert no_action['status'] == 'rejected' and '/il/command (action)' in no_action['reason']
    trunc_r = by_name['d_truncated']
    assert trunc_r['status'] == 'rejected' and 'd_truncated' in trunc_r['reason']
    assert 'truncated or corrupt' in trunc_r['reason']
    for name in ('b_nan', 'c_no_action', 'd_truncated'):
        assert name in res.stdout  # the summary names every rejected bag
    assert Dataset(tmp_path / 'ds').num_episodes == 2


def test_append_adds_only_new_bags_and_is_deterministic(tmp_path):
    bags = tmp_path / 'bags'
    for k in range(3):
        write_synthetic_bag(bags / f'ep{k}', SyntheticBagSpec(seed=k, duration=1.5))
    convert([bags / 'ep0', bags / 'ep1'], tmp_path / 'ds', progress=False)
    first = Dataset(tmp_path / 'ds').episode(0)
    reports = convert([bags], tmp_path / 'ds', progress=False)
    assert sorted(r.status for r in reports) == ['converted', 'skipped', 'skipped']
    ds = Dataset(tmp_path / 'ds')
    assert ds.num_episodes == 3
    for k, v in ds.episode(0).items():
        np.testing.assert_array_equal(v, first[k])
    # The same bags, converted afresh, give an identical dataset.
    convert([bags], tmp_path / 'ds2', progress=False)
    again = Dataset(tmp_path / 'ds2')
    for e in range(3):
        a, b = ds.episode(e), again.episode(e)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    for k, st in ds.stats.items():
        for name, v in st.items():
            np.testing.assert_array_equal(v, again.stats[k][name])


def test_copies_of_a_bag_in_one_call_convert_once(tmp_path):
    bags = tmp_path / 'bags'
    write_synthetic_bag(bags / 'ep0', SyntheticBagSpec(seed=0, duration=1.5))
    shutil.copytree(bags / 'ep0', tmp_path / 'copy' / 'ep0')
    reports = convert([bags, tmp_path / 'copy'], tmp_path / 'ds', progress=False)
    assert sorted(r.status for r in reports) == ['converted', 'skipped']
    assert 'same content as' in next(r.reason for r in reports if r.status == 'skipped')
    assert Dataset(tmp_path / 'ds').num_episodes == 1


def test_partial_recording_is_reported(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'bags' / 'cut', SyntheticBagSpec())
    (bag / 'metadata.yaml').unlink()  # what a SIGKILLed writer leaves behind
    shutil.copytree(bag, tmp_path / 'bags' / 'cut2')
    reports = convert([tmp_path / 'bags'], tmp_path / 'ds', progress=False)
    assert [r.status for r in reports] == ['skipped', 'skipped']   # named, not converted
    assert all('cut off' in r.reason and 'il-ros bag-recover' in r.reason for r in reports)


@pytest.mark.parametrize('fault, topic, words', [
    (dict(backwards_stamp_at=1.0), '/joint_states', 'time goes backwards'),
    (dict(resize_camera_at=1.0), '/camera/front/image_raw', 'image format changed'),
    (dict(rename_joint_at=1.0), '/joint_states', 'joint name set changed'),
    (dict(duration=0.3), '', 'too short'),
])
def test_each_validation_rejects_with_file_topic_and_time(tmp_path, fault, topic, words):
    bag = write_synthetic_bag(tmp_path / 'bags' / 'faulty', SyntheticBagSpec(**fault))
    write_synthetic_bag(tmp_path / 'bags' / 'fine', SyntheticBagSpec(seed=9))
    reports = {Path(r.bag).name: r for r in convert([tmp_path / 'bags'], tmp_path / 'ds',
                                                  progress=False)}
    bad = reports['faulty']
    assert bad.status == 'rejected' and words in bad.reason, bad.reason
    assert str(bag) in bad.reason and topic in bad.reason
    if words != 'too short':
        assert 't=1001.0' in bad.reason or 't=1000.9' in bad.reason, bad.reason
    assert reports['fine'].status == 'converted'


# A deployed episode (il-ros dagger): a takeover at 1.0 s, a hand-back at 2.0 s, and a
# 0.5 s hole in /il/command (and /il/control_source, sent in the same tick) in the middle of
# the intervention: a starved controller or recorder. 10 periods at 20 Hz.
GAP = (1.3, 1.8)
INTERVENTION_SPEC = SyntheticBagSpec(
    control_source=((0.0, 'policy'), (1.0, 'intervention'), (2.0, 'policy')),
    action_gap=GAP, duration=3.0, seed=4)


def _labels(ds_path, episode=0):
    from il_ros.data.store import decode_labels
    ds = Dataset(ds_path)
    ep = ds.episode(episode)
    return np.array(decode_labels(ep['label'])), ep['time'], ds.meta(episode)


def test_command_gap_rejects_by_default(tmp_path):
    write_synthetic_bag(tmp_path / 'bags' / 'ep', INTERVENTION_SPEC)
    (rep,) = convert([tmp_path / 'bags'], tmp_path / 'ds', progress=False)
    assert rep.status == 'rejected', 'plain convert stays strict'
    assert '/il/command: stale for' in rep.reason


def test_command_gap_ticks_are_labelled_hold_and_the_episode_is_kept(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'bags' / 'ep', INTERVENTION_SPEC)
    cfg = ConvertConfig(stale_action_hold=4.0, pre_intervention_frames=5)
    (rep,) = convert([tmp_path / 'bags'], tmp_path / 'ds', cfg, progress=False)
    assert rep.status == 'converted', rep.reason
    labels, ticks, meta = _labels(tmp_path / 'ds')
    # Expected from the bag's own message times (read with rosbags): a tick whose newest
    # command (half a period of lookahead) is more than 4 periods old is hold.
    a_t = _times(bag, '/il/command')
    i = np.searchsorted(a_t, ticks + 0.025 + 1e-9, side='right') - 1
    stale = (ticks - a_t[i]) / 0.05 > 4.0
    assert stale.sum() >= 5
    rel = ticks - INTERVENTION_SPEC.start
    assert np.all((rel[stale] > GAP[0]) & (rel[stale] < GAP[1] + 0.05))
    np.testing.assert_array_equal(labels == 'hold', stale)
    assert rep.stale_hold == meta['stale_hold_frames'] == int(stale.sum())
    assert any('labelled hold' in w and '/il/command' in w for w in rep.warnings)
    # The intervention around the hole is kept, and the hole is no hand-back: the only
    # pre_intervention frames are the 5 before the one takeover at 1.0 s.
    inter = (rel >= 1.0) & (rel < 2.0) & ~stale
    assert inter.sum() >= 10 and np.all(labels[inter] == 'intervention')
    pre = np.flatnonzero(labels == 'pre_intervention')
    assert pre.size == 5 and np.all((rel[pre] > 0.7) & (rel[pre] < 1.0))
    assert set(labels[rel >= 2.05]) == {'policy'}


def test_command_gap_hold_keeps_the_other_checks(tmp_path):
    # Most of the episode without a command: still rejected (max_hold_fraction).
    write_synthetic_bag(tmp_path / 'a' / 'ep', SyntheticBagSpec(action_gap=(0.5, 2.9)))
    (rep,) = convert([tmp_path / 'a'], tmp_path / 'ds_a',
                     ConvertConfig(stale_action_hold=4.0), progress=False)
    assert rep.status == 'rejected' and 'max_hold_fraction' in rep.reason, rep.reason
    # A stale observation stream still rejects.
    write_synthetic_bag(tmp_path / 'b' / 'ep', FOREIGN)
    (rep,) = convert([tmp_path / 'b'], tmp_path / 'ds_b',
                     ConvertConfig(topics=FOREIGN_TOPICS, stale_action_hold=4.0),
                     progress=False)
    assert rep.status == 'rejected' and '/robot/cam_front/image_raw' in rep.reason
    with pytest.raises(ValueError, match='stale_action_hold'):
        ConvertConfig(stale_action_hold=1.0)          # below stale_warn

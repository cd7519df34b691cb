"""The recorder node over real DDS: it and a publisher run as processes; bags are read back.

The test process is only a service client. Every check reads the bag with rosbags or the
episode JSON the node wrote.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from rosbags.rosbag2 import Reader
from std_srvs.srv import SetBool, Trigger

from conftest import call_service, REPO, wait_for
from il_ros.data.bag_info import PARTIAL, summarize
from test_episode_writer import TS

PUB = str(REPO / 'test' / 'pub_helper.py')
SIM = str(REPO / 'test' / 'fake_sim_helper.py')


def call(node, name, data=None, timeout=20.0, recorder='recorder'):
    """Call ``/<recorder>/<name>`` (SetBool when ``data`` is given, else Trigger)."""
    srv = SetBool if data is not None else Trigger
    request = srv.Request()
    if data is not None:
        request.data = data
    return call_service(node, srv, f'/{recorder}/{name}', request, timeout)


def start_recorder(procs, out, *params, name='recorder'):
    """A recorder process writing into ``out``.

    Loss from stamp gaps is judged in test_episode_loss.py, with known holes. Here helper
    publishers that a loaded machine delays leave gaps they never filled, so unless a test
    sets it, the judgement is off (``max_loss_fraction`` 1); the sequence numbers the tests
    check still prove that nothing was dropped.
    """
    if not any(p.startswith('max_loss_fraction:=') for p in params):
        params += ('max_loss_fraction:=1.0',)
    args = ['--ros-args', '-r', f'__node:={name}', '-p', f'output_dir:={out}']
    for p in params:
        args += ['-p', p]
    return procs.python('il_ros.ros.recorder', *args, name=name)


def wait_subscribed(procs, rec, *topics, timeout=20):
    for topic in topics:
        wait_for(lambda t=topic: f'subscribed {t} ' in procs.log(rec) or rec.poll() is not None,
                 timeout, what=f'recorder to subscribe {topic}')
        assert rec.poll() is None, procs.log(rec)


def read_bag(path):
    """{topic: [decoded message]} via rosbags."""
    out = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(TS.deserialize_cdr(raw, conn.msgtype))
    return out


def meta(out, i):
    return json.loads((out / f'episode_{i:04d}.json').read_text())


def wait_count(out, i, topic, n, timeout=20):
    """Wait until episode ``i``'s progress metadata counts ``n`` messages on ``topic``."""
    wait_for(lambda: meta(out, i)['topics'].get(topic, {}).get('count', 0) >= n, timeout,
             what=f'{n} messages on {topic} in episode {i}')


def assert_contiguous(seq, what):
    seq = [int(x) for x in seq]
    assert seq == list(range(seq[0], seq[0] + len(seq))), f'{what}: holes in {seq}'


def test_manual_episodes_record_all_discovered_topics(procs, client_node, tmp_path):
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--joint-states', '/js@50', '--image', '/img@20',
                 '--floats', '/cmd@10', '--latched', '/desc', '--image-size', '32'], 'pub')
    rec = start_recorder(procs, out, 'task:=stack', 'operator:=tester')
    wait_subscribed(procs, rec, '/js', '/img', '/cmd', '/desc')

    assert not call(client_node, 'stop_episode', True).success  # nothing recording
    res = call(client_node, 'start_episode')
    assert res.success and 'episode_0000' in res.message, res.message
    again = call(client_node, 'start_episode')
    assert not again.success and 'already recording' in again.message
    wait_count(out, 0, '/js', 60)
    res = call(client_node, 'stop_episode', True)
    assert res.success and 'complete' in res.message, res.message

    m = meta(out, 0)
    assert (m['status'], m['success'], m['task'], m['operator']) == (
        'complete', True, 'stack', 'tester')
    bag = read_bag(out / 'episode_0000')
    assert {'/js', '/img', '/cmd', '/desc'} <= set(bag)
    assert not {'/rosout', '/parameter_events'} & set(bag)
    for topic in ('/js', '/img', '/cmd'):
        assert len(bag[topic]) == m['topics'][topic]['count'] > 0, topic
        assert m['topics'][topic]['drops'] == 0  # holes would show in the sequence below
    assert_contiguous([x.position[0] for x in bag['/js']], '/js')
    assert_contiguous([x.header.frame_id for x in bag['/img']], '/img')
    assert_contiguous([x.data[0] for x in bag['/cmd']], '/cmd')
    assert m['topics']['/js']['time_source'] == 'header'
    # The rate the recorder reports is the rate in the bag (a loaded machine slows the helper
    # publisher itself: 35 Hz instead of 50 was seen in CI).
    for topic in ('/js', '/img'):
        t = [x.header.stamp.sec + 1e-9 * x.header.stamp.nanosec for x in bag[topic]]
        assert m['topics'][topic]['rate_hz'] == pytest.approx((len(t) - 1) / (t[-1] - t[0]),
                                                              rel=0.15), topic
    assert m['topics']['/cmd']['time_source'] == 'receive'
    img = bag['/img'][0]
    assert (img.height, img.width, img.encoding, len(img.data)) == (32, 32, 'rgb8', 3072)
    assert [x.position[0] for x in bag['/desc']] == [7.0]  # latched, published long before

    assert call(client_node, 'start_episode').success
    res = call(client_node, 'discard_episode')
    assert res.success and 'discarded' in res.message
    assert not (out / 'episode_0001').exists() and meta(out, 1)['status'] == 'discarded'
    assert 'episode_0002' in call(client_node, 'start_episode').message
    assert call(client_node, 'stop_episode', False).success
    assert meta(out, 2)['success'] is False
    assert procs.stop(rec) == 0


def test_silent_configured_topic_marks_episode_incomplete(procs, client_node, tmp_path):
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--joint-states', '/js@50', '--silent', '/silent'],
                'pub')
    rec = start_recorder(procs, out, 'topics:=[/js, /silent, /ghost]',
                         'expected_topics_timeout_s:=0.3')
    wait_subscribed(procs, rec, '/js', '/silent')
    assert call(client_node, 'start_episode').success
    wait_for(lambda: 'sent no message in the first 0.3 s' in procs.log(rec), 10,
             what='the early warning about silent topics')
    res = call(client_node, 'stop_episode', True)
    assert res.success and 'incomplete' in res.message
    assert '/silent' in res.message and '/ghost' in res.message
    m = meta(out, 0)
    assert m['status'] == 'incomplete' and m['success'] is True
    assert any('/silent' in w for w in m['warnings']) and any('/ghost' in w for w in m['warnings'])
    assert m['topics']['/js']['count'] > 0 and m['topics']['/silent']['count'] == 0
    assert len(read_bag(out / 'episode_0000')['/js']) == m['topics']['/js']['count']


def test_silent_optional_topic_leaves_episode_complete(procs, client_node, tmp_path):
    """A silent topic of ``optional_topics`` (dagger: no takeover) is no fault."""
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--joint-states', '/js@50', '--silent', '/silent'],
                'pub')
    rec = start_recorder(procs, out, 'topics:=[/js, /silent, /ghost]',
                         'optional_topics:=[/silent, /ghost]', 'expected_topics_timeout_s:=0.3')
    wait_subscribed(procs, rec, '/js', '/silent')
    assert call(client_node, 'start_episode').success
    wait_count(out, 0, '/js', 5)
    res = call(client_node, 'stop_episode', True)
    m = meta(out, 0)
    assert res.success and m['status'] == 'complete', (res.message, m['warnings'])
    assert m['expected_topics'] == ['/js'] and m['topics']['/silent']['count'] == 0
    assert not m['warnings']


def test_optional_topics_must_be_recorded_topics(procs, tmp_path):
    rec = start_recorder(procs, tmp_path / 'eps', 'topics:=[/js]', 'optional_topics:=[/joy]')
    wait_for(lambda: rec.poll() is not None, 60, what='the recorder to refuse')
    assert rec.returncode == 2
    assert "parameter optional_topics=['/joy']: must be among topics" in procs.log(rec)


def test_bad_output_dir_keeps_node_alive(procs, client_node, tmp_path):
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--joint-states', '/js@50'], 'pub')
    rec = start_recorder(procs, out, 'topics:=[/js]')
    wait_subscribed(procs, rec, '/js')
    res = call(client_node, 'start_episode')
    assert res.success, res.message
    wait_count(out, 0, '/js', 10)
    res = call(client_node, 'stop_episode', True)
    assert res.success, res.message
    n0 = meta(out, 0)['topics']['/js']['count']

    shutil.move(out, tmp_path / 'saved')
    out.write_text('a file where the folder was')
    res = call(client_node, 'start_episode')
    assert not res.success and str(out) in res.message, res.message
    assert rec.poll() is None, procs.log(rec)
    wait_for(lambda: 'start_episode failed' in procs.log(rec), 5, what='the error in the log')
    assert not call(client_node, 'stop_episode', True).success  # still answers

    out.unlink()
    shutil.move(tmp_path / 'saved', out)
    res = call(client_node, 'start_episode')
    assert res.success and 'episode_0001' in res.message, res.message
    wait_count(out, 1, '/js', 10)
    res = call(client_node, 'stop_episode', True)
    assert res.success, res.message
    assert len(read_bag(out / 'episode_0000')['/js']) == n0
    assert meta(out, 1)['status'] == 'complete', meta(out, 1)


def test_disk_full_during_episode(procs, client_node, tmp_path):
    """A 2 MiB tmpfs fills up mid-episode: the episode ends with the error, node lives."""
    out = tmp_path / 'tiny'
    out.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(out)],
                      capture_output=True).returncode != 0:
        pytest.skip('cannot mount a tmpfs here')
    try:
        procs.start([sys.executable, PUB, '--image', '/img@30', '--image-size', '128'], 'pub')
        rec = start_recorder(procs, out, 'topics:=[/img]')
        wait_subscribed(procs, rec, '/img')
        assert call(client_node, 'start_episode').success
        wait_for(lambda: 'No space left on device' in procs.log(rec), 30,
                 what='the disk-full error in the recorder log')
        wait_for(lambda: 'episode_0000: incomplete' in procs.log(rec), 10,
                 what='the node to end the failed episode')
        res = call(client_node, 'stop_episode', True)
        assert not res.success and 'No space left on device' in res.message, res.message
        res = call(client_node, 'start_episode')  # the disk is still full
        if res.success:  # tmpfs had room for a new folder and JSON
            assert call(client_node, 'discard_episode').success
        else:
            assert str(out) in res.message, res.message
        assert rec.poll() is None
    finally:
        procs.stop_all()
        subprocess.run(['umount', str(out)], check=False)


def test_sigkill_mid_episode(procs, client_node, tmp_path):
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--joint-states', '/js@50', '--image', '/img@20',
                 '--image-size', '64'], 'pub')
    rec = start_recorder(procs, out, 'topics:=[/js, /img]')
    wait_subscribed(procs, rec, '/js', '/img')
    assert call(client_node, 'start_episode').success
    wait_count(out, 0, '/img', 5)
    assert call(client_node, 'stop_episode', True).success
    assert call(client_node, 'start_episode').success
    wait_count(out, 1, '/js', 20)
    os.kill(rec.pid, signal.SIGKILL)
    rec.wait(10)

    summary = summarize(out)
    ok, partial = summary['bags']
    assert ok['status'] == 'complete' and ok['error'] is None and ok['topics']['/js']['count']
    assert partial['status'] == PARTIAL and 'not finalized' in partial['error']
    before = (out / 'episode_0001.json').read_bytes()

    # A new name: the killed node's services linger in the graph until its lease expires.
    rec2 = start_recorder(procs, out, 'topics:=[/js, /img]', name='recorder2')
    wait_subscribed(procs, rec2, '/js', '/img')
    res = call(client_node, 'start_episode', recorder='recorder2')
    assert res.success and 'episode_0002' in res.message
    wait_count(out, 2, '/img', 5)
    assert call(client_node, 'stop_episode', True, recorder='recorder2').success
    assert (out / 'episode_0001.json').read_bytes() == before
    assert meta(out, 2)['status'] == 'complete'
    assert len(read_bag(out / 'episode_0000')['/js']) == ok['topics']['/js']['count']


def test_auto_episodes_under_sim_time(procs, tmp_path):
    out = tmp_path / 'eps'
    sim = procs.start([sys.executable, SIM, '--succeed-after', '0.4,never,0.2'], 'sim')
    rec = start_recorder(procs, out, 'use_sim_time:=true', 'auto_episodes:=3',
                         'topics:=[/joint_states, /sim/success]', 'success_hold_s:=0.5',
                         'episode_timeout_s:=1.5')
    wait_for(lambda: rec.poll() is not None, 60, what='the recorder to finish 3 episodes')
    assert rec.returncode == 0, procs.log(rec)
    assert procs.log(sim).count('reset ') == 3
    metas = [meta(out, i) for i in range(3)]
    assert not (out / 'episode_0003.json').exists()
    assert [m['success'] for m in metas] == [True, False, True]
    assert all(m['status'] == 'complete' and m['use_sim_time'] for m in metas)
    # Success after 0.4 s (sim time) held 0.5 s, the timeout at 1.5 s, success after 0.2 s
    # held 0.5 s. The 20 Hz steady-clock driver stops an episode a little late, never much
    # early (the start is stamped when the reset answers, a few ms after the sim's reset).
    # On a loaded machine sim time runs on while the driver waits (a CI run measured 1.80 s
    # for the 1.5 s timeout), so the bounds are tight below and loose above.
    durations = [m['duration_s'] for m in metas]
    assert 0.75 <= durations[0] <= 1.4, durations
    assert 1.45 <= durations[1] <= 2.3, durations
    assert 0.55 <= durations[2] <= 1.2, durations
    for i, m in enumerate(metas):
        assert m['start_time_ns'] >= 1000 * 10**9  # node clock followed /clock
        with Reader(out / f'episode_{i:04d}') as reader:
            assert reader.start_time >= m['start_time_ns']
        joints = read_bag(out / f'episode_{i:04d}')['/joint_states']
        assert joints[-1].position[0] == i + 1  # recorded after the i-th reset
        assert m['topics']['/joint_states']['rate_hz'] == pytest.approx(50, rel=0.2)


def test_auto_mode_ignores_a_stale_success_across_reset(procs, tmp_path):
    """A success=True of the previous episode, arriving after the reset, is ignored.

    It must not end the new episode (it once recorded a 12-frame "successful" lift episode
    at the start pose).
    """
    out = tmp_path / 'eps'
    procs.start([sys.executable, SIM, '--succeed-after', 'never,never', '--stale-success'],
                'sim')
    rec = start_recorder(procs, out, 'use_sim_time:=true', 'auto_episodes:=2',
                         'topics:=[/joint_states, /sim/success]', 'success_hold_s:=0.3',
                         'episode_timeout_s:=1.0')
    wait_for(lambda: rec.poll() is not None, 60, what='the recorder to finish 2 episodes')
    assert rec.returncode == 0, procs.log(rec)
    metas = [meta(out, i) for i in range(2)]
    assert [m['success'] for m in metas] == [False, False]
    # Each episode ran to its 1 s timeout (sim time), not ended by the stale success; the
    # upper bound is loose because sim time may run on a little past the timeout while a
    # loaded machine stops the episode (a fresh-clone run failed the old +-0.2 s bound).
    durations = [m['duration_s'] for m in metas]
    assert all(0.8 <= d <= 2.0 for d in durations), durations


def test_auto_mode_fails_cleanly_without_reset_service(procs, tmp_path):
    rec = start_recorder(procs, tmp_path / 'eps', 'auto_episodes:=2', 'reset_timeout_s:=1.0',
                         'expected_topics_timeout_s:=0.2', 'reset_service:=/nowhere/reset')
    wait_for(lambda: rec.poll() is not None, 30, what='the recorder to give up')
    assert rec.returncode == 1
    assert '/nowhere/reset not available' in procs.log(rec)
    assert not list((tmp_path / 'eps').glob('episode_*'))

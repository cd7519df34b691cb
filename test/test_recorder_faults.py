"""The recorder node under faults, over real processes.

A full disk on every episode but the first, bad start-up parameters, output folders outside
the root, hostile type names, a SIGKILL whose complete chunks are recovered.

The recorder and the publisher are processes; the test process only calls services and
reads what the node wrote.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import rclpy
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from conftest import wait_for
from il_ros.data.episodes import episode_status
from test_recorder import (call, meta, PUB, read_bag, start_recorder, wait_count,
                           wait_subscribed)


def _mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f'cannot mount a {size} tmpfs here (needs root and mount rights): '
                    f'{res.stderr.strip()}')


def test_recorder_survives_a_full_disk_on_every_episode_and_records_after_space_is_freed(
        procs, client_node, tmp_path):
    """A complete episode, two that fill the disk, then a complete one after space is freed.

    rclpy refused to log the stop of a failed episode (error) at the call site that had
    logged a complete one (info), and the other way round: the node died on the second stop.
    """
    out = tmp_path / 'tiny'
    # 8 MB: room for the first and the last episode (about 1.5 MB each: 49 kB images at
    # 30 Hz until the once-a-second progress file counts 3), not for the two between.
    _mount_tmpfs(out, '8m')
    try:
        procs.start([sys.executable, PUB, '--image', '/img@30', '--image-size', '128'], 'pub')
        rec = start_recorder(procs, out, 'topics:=[/img]')
        wait_subscribed(procs, rec, '/img')

        assert call(client_node, 'start_episode').success            # 0: fits
        wait_count(out, 0, '/img', 3)
        res = call(client_node, 'stop_episode', True)
        assert res.success and 'complete' in res.message, res.message

        for i in (1, 2):                                             # 1, 2: the disk fills
            res = call(client_node, 'start_episode')
            if res.success:
                wait_for(lambda i=i: f'episode_000{i}: incomplete' in procs.log(rec), 60,
                         what=f'episode {i} to fail on the full disk')
                assert 'No space left on device' in procs.log(rec)
                res = call(client_node, 'stop_episode', True)        # already ended: answered
                assert not res.success and 'no episode is recording' in res.message
            else:                                # no room left for even the episode's JSON
                assert str(out) in res.message, res.message
            assert rec.poll() is None, procs.log(rec)

        for p in out.iterdir():                                      # free the space
            if p.name != 'episode_0000' and p.name != 'episode_0000.json':
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        res = call(client_node, 'start_episode')
        assert res.success, res.message
        n = int(res.message.split()[0].rsplit('_', 1)[1])
        wait_count(out, n, '/img', 3)
        res = call(client_node, 'stop_episode', True)
        assert res.success and 'complete' in res.message, res.message
        assert meta(out, n)['status'] in ('complete', 'complete_with_loss')
        assert len(read_bag(out / f'episode_{n:04d}')['/img']) == meta(out, n)['topics'][
            '/img']['count'] > 0
        assert rec.poll() is None and 'ValueError' not in procs.log(rec)
        assert procs.stop(rec) == 0
    finally:
        procs.stop_all()
        subprocess.run(['umount', str(out)], check=False)


BAD = [
    ('queue_size:=0', 'queue_size=0: must be >= 1'),
    ('storage:=foo', "storage='foo': must be one of"),
    ('discovery_period_s:=0.0', 'discovery_period_s=0.0: must be > 0'),
    ('expected_topics_timeout_s:=-1.0', 'expected_topics_timeout_s=-1.0: must be > 0'),
    ('auto_episodes:=-1', 'auto_episodes=-1: must be >= 0'),
    ('reset_timeout_s:=0.0', 'reset_timeout_s=0.0: must be > 0'),
    ('episode_timeout_s:=.nan', 'episode_timeout_s=nan: must be a finite number'),
    ('success_hold_s:=-0.5', 'success_hold_s=-0.5: must be >= 0'),
    ('max_loss_fraction:=2.0', 'max_loss_fraction=2.0: must be <= 1'),
    ('expected_rates:=[/img=0]', "'/img=0' must be TOPIC=HZ"),
    ('queue_size:=ten', 'queue_size'),
]


@pytest.mark.parametrize('param, words', BAD, ids=[b[0].split(':=')[0] + '-' + b[0].split(
    ':=')[1] for b in BAD])
def test_bad_start_up_parameter_is_one_line_and_exit_2(tmp_path, param, words):
    res = subprocess.run([sys.executable, '-m', 'il_ros.ros.recorder', '--ros-args', '-p',
                          f'output_dir:={tmp_path}', '-p', param],
                         capture_output=True, text=True, timeout=120)
    lines = [x for x in (res.stdout + res.stderr).splitlines() if x.strip()]
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(lines) == 1 and lines[0].startswith('recorder: '), lines
    assert words in lines[0], lines[0]


def test_output_dir_outside_the_root_is_refused_at_start(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'il_ros.ros.recorder', '--ros-args', '-p',
                          f'output_dir:={tmp_path}/../elsewhere', '-p',
                          f'output_root:={tmp_path}'], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f'is outside the output root {tmp_path}' in res.stderr, res.stderr


def _set_param(node, name, value, recorder='recorder'):
    client = node.create_client(SetParameters, f'/{recorder}/set_parameters')
    try:
        assert client.wait_for_service(20)
        v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        req = SetParameters.Request(parameters=[ParameterMsg(name=name, value=v)])
        future = client.call_async(req)
        rclpy.spin_until_future_complete(node, future, timeout_sec=20)
        return future.result().results[0]
    finally:
        node.destroy_client(client)


def test_output_dir_cannot_leave_the_root_at_run_time(procs, client_node, tmp_path):
    """``ros2 param set /recorder output_dir /etc`` is refused; a sub-folder is fine."""
    out = tmp_path / 'root' / 'eps'
    rec = start_recorder(procs, out, 'topics:=[/nothing]', 'expected_topics_timeout_s:=60.0')
    wait_for(lambda: 'recording [' in procs.log(rec) or rec.poll() is not None, 60,
             what='the recorder to start')
    res = _set_param(client_node, 'output_dir', '/etc')
    assert not res.successful
    assert '/etc is outside the output root' in res.reason and str(out) in res.reason
    res = _set_param(client_node, 'output_dir', str(out / '..' / 'x'))
    assert not res.successful, res.reason
    res = _set_param(client_node, 'queue_size', 'x')            # wrong type: refused
    assert not res.successful
    res = _set_param(client_node, 'output_dir', str(out / 'round_1'))
    assert res.successful, res.reason
    start = call(client_node, 'start_episode')
    assert start.success and str(out / 'round_1' / 'episode_0000') in start.message
    assert call(client_node, 'discard_episode').success
    res = _set_param(client_node, 'output_root', '/')                # read-only
    assert not res.successful
    assert rec.poll() is None


def test_killed_episode_is_skipped_at_conversion_and_its_chunks_are_recovered(
        procs, client_node, tmp_path):
    """SIGKILL mid-episode: bag-recover copies the complete chunks into a readable bag."""
    out = tmp_path / 'eps'
    procs.start([sys.executable, PUB, '--image', '/img@30', '--image-size', '128'], 'pub')
    rec = start_recorder(procs, out, 'topics:=[/img]')
    wait_subscribed(procs, rec, '/img')
    assert call(client_node, 'start_episode').success
    wait_count(out, 0, '/img', 60)          # 49 kB each: 2+ complete 1 MB chunks on disk
    os.kill(rec.pid, signal.SIGKILL)
    rec.wait(10)
    bag = out / 'episode_0000'
    assert episode_status(bag) == 'recording'
    before = sorted((p.name, p.stat().st_size) for p in bag.iterdir())

    run = [sys.executable, '-m', 'il_ros.cli']
    res = subprocess.run([*run, 'bag-recover', str(bag)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'the original is unchanged' in res.stdout
    assert sorted((p.name, p.stat().st_size) for p in bag.iterdir()) == before
    copy = out / 'episode_0000_recovered'
    seq = [int(m.header.frame_id) for m in read_bag(copy)['/img']]
    assert len(seq) >= 20 and seq == list(range(seq[0], seq[0] + len(seq))), seq
    meta_copy = json.loads((out / 'episode_0000_recovered.json').read_text())
    assert meta_copy['status'] == 'incomplete' and meta_copy['recovered_from'] == str(bag)
    assert meta_copy['topics']['/img']['count'] == len(seq)
    again = subprocess.run([*run, 'bag-recover', str(bag)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 1 and 'exists' in again.stderr       # never overwritten

    from il_ros.data.convert import CUT_OFF, convert
    from il_ros.data.topic_map import ConvertConfig
    reports = {r.bag.rsplit('/', 1)[1]: r for r in convert([out], tmp_path / 'ds',
                                                           progress=False)}
    assert reports['episode_0000'].status == 'skipped'
    assert reports['episode_0000'].reason == CUT_OFF
    assert reports['episode_0000_recovered'].status == 'skipped'
    assert 'incomplete episode' in reports['episode_0000_recovered'].reason
    cfg = ConvertConfig(keep_incomplete=True)
    kept = {r.bag.rsplit('/', 1)[1]: r for r in convert([out], tmp_path / 'ds2', cfg,
                                                        progress=False)}
    # The recovered bag has no camera role topic of the default map: rejected as such, not
    # skipped, and the killed original stays skipped.
    assert kept['episode_0000'].status == 'skipped'
    assert kept['episode_0000_recovered'].status == 'rejected'
    assert kept['episode_0000_recovered'].episode_status == 'incomplete'


def test_hostile_type_names_are_refused_and_discovery_goes_on(client_node, tmp_path,
                                                              monkeypatch):
    """A fake graph offers hostile type names; the node warns once per topic, records on.

    (A real publisher cannot advertise such a name: rclpy takes the type from a generated
    message class. So the graph is faked in-process around a real Recorder node.)
    """
    from il_ros.ros import _rec_topics
    from il_ros.ros.recorder import Recorder
    graph = [('/a', ['../msg/X']), ('/b', ['os/msg/X']), ('/c', ['json/msg/X']),
             ('/d', ['//']), ('/e', ['std_msgs/msg/../X']), ('/f', ['std_msgs/msg/NoSuch']),
             ('/g', ['antigravity/msg/X']), ('/h', ['std_msgs/srv/Bool']),
             ('/ok', ['std_msgs/msg/Bool'])]
    imported = []
    real_import = _rec_topics.importlib.import_module
    node = Recorder(parameter_overrides=[     # only these topics, whatever else is around
        rclpy.parameter.Parameter('output_dir', value=str(tmp_path)),
        rclpy.parameter.Parameter('topics', value=[t for t, _ in graph])])
    monkeypatch.setattr(_rec_topics.importlib, 'import_module',
                        lambda name: imported.append(name) or real_import(name))
    warnings = []
    monkeypatch.setattr(node, 'get_topic_names_and_types', lambda: graph)
    monkeypatch.setattr(node, 'get_publishers_info_by_topic', lambda topic: [
        type('E', (), {'qos_profile': rclpy.qos.qos_profile_sensor_data})()])
    logger = node.get_logger()
    monkeypatch.setattr(logger, 'warning', lambda msg, **k: warnings.append(msg))
    monkeypatch.setattr(node, 'get_logger', lambda: logger)
    monkeypatch.setattr(node, 'create_subscription', lambda *a, **k: object())
    node.discover()
    node.discover()                                   # warned once per topic
    assert set(node.subscribed) == {'/ok'}
    refused = {w.split()[2] for w in warnings if w.startswith('not recording')}
    assert refused == {'/a', '/b', '/c', '/d', '/e', '/f', '/g', '/h'}, warnings
    assert len(warnings) == 8
    assert all(n == 'std_msgs.msg' for n in imported), imported
    node.destroy_node()


def test_auto_mode_records_a_failed_episode_again_and_gives_up_after_three(procs, tmp_path):
    """A failed auto episode is retried after a reset; three failures in a row end the run.

    The output folder becomes a file once the recorder is configured (its configure checks
    the folder), so every episode fails to start: the log shows two retries, then the run
    ends with exit code 1 naming the cause.
    """
    from test_recorder import SIM
    blocker = tmp_path / 'eps'
    rec = start_recorder(procs, blocker, 'use_sim_time:=true', 'auto_episodes:=2',
                         'topics:=[/joint_states, /sim/success]', 'episode_timeout_s:=1.0')
    wait_for(lambda: 'active: recording episodes' in procs.log(rec), 30, what='activation')
    blocker.rmdir()                          # no sim yet: the first episode waits for its reset
    blocker.write_text('a file where the folder should be')
    procs.start([sys.executable, SIM, '--succeed-after', '0.2,0.2,0.2,0.2'], 'sim')
    wait_for(lambda: rec.poll() is not None, 90, what='the recorder to give up')
    log = procs.log(rec)
    assert rec.returncode == 1, log
    assert 'auto episode 1/2 failed' in log and '1 failure(s) in a row' in log
    assert '2 failure(s) in a row' in log
    assert 'stopping after 3 failed episodes in a row' in log and str(blocker) in log
    assert 'Traceback' not in log

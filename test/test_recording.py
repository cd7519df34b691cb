"""il_ros.recording without ROS: what record_episodes makes of the graph's processes.

The node graph is replaced by a stand-in GraphRunner whose "recorder" writes episode
metadata files and exits (or whose sim dies); the real thing runs in test_record_graph.py.
What is checked: statuses come from the episodes' metadata (episodes already in the folder
are left out), a node that dies is named with the end of its log, a folder that cannot be
created or an unknown task is refused before anything starts, and the wall-clock limit
stops a recording that never ends.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from il_ros.recording import record_episodes, record_graph, RecordError, RecordResult
from il_ros.robot import load_robot


class FakePopen:
    def __init__(self, code=None):
        self.returncode = code

    def poll(self):
        return self.returncode


class FakeProc:
    def __init__(self, name, log: Path, code=None):
        self.name, self.log, self.popen = name, log, FakePopen(code)

    def tail(self, n=20):
        return '\n'.join(self.log.read_text().splitlines()[-n:])


def fake_runner(statuses, dying=None):
    """Return a stand-in GraphRunner class.

    Its recorder writes ``statuses`` and exits 0, or its node ``dying`` exits 1 after
    logging a traceback.
    """
    class Runner:
        def __init__(self, graph, values, log_dir, extra_params=None, env=None):
            assert graph == 'record' and values['teleop_mode'] == 'scripted'
            self.out, self.log_dir = Path(values['out']), Path(log_dir)
            self.env = {'ROS_DOMAIN_ID': '42'}
            self.procs = {}

        def __enter__(self):
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for name in ('sim_robot', 'teleop', 'recorder'):
                log = self.log_dir / f'{name}.log'
                log.write_text(f'{name} started\n')
                self.procs[name] = FakeProc(name, log)
            return self

        def __exit__(self, *exc):
            pass

        def dead(self):
            if dying:
                proc = self.procs[dying]
                proc.log.write_text('started\nTraceback: boom\nRuntimeError: no EGL\n')
                proc.popen.returncode = 1
            elif statuses is not None:
                for i, status in enumerate(statuses):
                    (self.out / f'episode_{i + 1:04d}.json').write_text(
                        json.dumps({'status': status}))
                self.procs['recorder'].popen.returncode = 0
            return [p for p in self.procs.values() if p.popen.returncode is not None]
    return Runner


def test_statuses_of_the_new_episodes(tmp_path, monkeypatch):
    out = tmp_path / 'bags'
    out.mkdir()
    (out / 'episode_0000.json').write_text(json.dumps({'status': 'complete'}))   # earlier
    monkeypatch.setattr('il_ros.launcher.GraphRunner', fake_runner(['complete', 'incomplete']))
    res = record_episodes(out, 'lift', 2, progress=False)
    assert res.ok and res.error == '' and res.episodes == 2
    assert res.statuses == {'episode_0001.json': 'complete', 'episode_0002.json': 'incomplete'}
    assert res.complete == 1
    assert res.check() is res


def test_a_node_that_dies_is_named_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr('il_ros.launcher.GraphRunner', fake_runner(None, dying='sim_robot'))
    res = record_episodes(tmp_path / 'bags', 'lift', 3, progress=False)
    assert not res.ok and res.statuses == {}
    assert res.error.startswith('0 of 3 episodes finished; node sim_robot exited with code 1')
    assert 'RuntimeError: no EGL' in res.error and 'sim_robot.log' in res.error
    with pytest.raises(RecordError, match='node sim_robot exited'):
        res.check()


def test_too_few_episodes_and_a_timeout_are_failures(tmp_path, monkeypatch):
    monkeypatch.setattr('il_ros.launcher.GraphRunner', fake_runner(['complete']))
    res = record_episodes(tmp_path / 'a', 'lift', 2, progress=False)
    assert not res.ok and res.complete == 1
    assert res.error.startswith('1 of 2 episodes finished; node recorder exited with code 0')
    monkeypatch.setattr('il_ros.launcher.GraphRunner', fake_runner(None))
    res = record_episodes(tmp_path / 'b', 'lift', 2, timeout=0.3, progress=False)
    assert not res.ok and 'timed out after 0s with 0 of 2 episodes' in res.error


def test_bad_arguments_are_refused_before_anything_starts(tmp_path, monkeypatch):
    def no_start(*a, **k):
        raise AssertionError('nothing may start')
    # Planning the graph is allowed (it starts nothing); starting it is not.
    monkeypatch.setattr('il_ros.launcher.GraphRunner.__enter__', no_start)
    monkeypatch.setattr('il_ros.launcher.GraphRunner.start', no_start)
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(RecordError, match='cannot create output folder'):
        record_episodes(blocker / 'bags', 'lift', 1, progress=False)
    with pytest.raises(RecordError, match="unknown task 'fly'; valid tasks"):
        record_episodes(tmp_path / 'bags', 'fly', 1, progress=False)
    with pytest.raises(RecordError, match='episodes must be >= 1'):
        record_episodes(tmp_path / 'bags', 'lift', 0, progress=False)


def test_the_recorder_records_the_robots_topics_at_its_rates(tmp_path):
    """Topics and expected rates come from the robot description, for every camera asked."""
    for name in ('sim_arm', 'panda'):
        robot = load_robot(name)
        runner = record_graph(tmp_path / 'bags', 'lift', 1, robot=name,
                              cameras=('front', 'wrist'), env={})
        rec = runner.plans['recorder'].params
        cams = [robot.camera(c) for c in ('front', 'wrist')]
        assert rec['topics'] == [c.topic for c in cams] + [
            robot.joint_states.topic, robot.command.topic, 'il/teleop/command',
            'sim/state', 'sim/success']        # relative: the recorder resolves them
        assert rec['expected_rates'] == [f'{c.topic}={c.rate_hz:g}' for c in cams] + [
            f'{robot.joint_states.topic}={robot.joint_states.rate_hz:g}']
        sim = runner.plans['sim_robot'].params
        assert sim['cameras'] == ['front', 'wrist'] and sim['robot'] == name
        assert runner.plans['teleop'].params['robot'] == name
    # The default: the robot's first camera (front), as recording did before robots.
    rec = record_graph(tmp_path / 'bags', 'lift', 1, env={}).plans['recorder'].params
    assert rec['topics'][0] == 'camera/front/image_raw' and len(rec['expected_rates']) == 2
    assert not (tmp_path / 'bags').exists()


def test_unknown_robot_task_and_camera_are_refused(tmp_path):
    with pytest.raises(RecordError, match="unknown robot 'ur99'"):
        record_graph(tmp_path, 'lift', 1, robot='ur99')
    with pytest.raises(RecordError, match="unknown task 'nope'; valid tasks for robot panda: "
                                          "lift, path, reach_around"):
        record_graph(tmp_path, 'nope', 1, robot='panda')
    with pytest.raises(RecordError, match=r"panda.yaml: cameras: .* \['side'\], the robot "
                                          r"has \['front', 'wrist'\]"):
        record_graph(tmp_path, 'lift', 1, robot='panda', cameras=['side'])


def _lossy(out, i):
    (out / f'episode_{i:04d}.json').write_text(json.dumps({
        'status': 'complete_with_loss', 'topics': {
            '/camera/front/image_raw': {'count': 90, 'lost': 10, 'loss_fraction': 0.1},
            '/joint_states': {'count': 500, 'lost': 0, 'loss_fraction': 0.0}}}))


def test_complete_with_loss_counts_as_recorded_and_is_reported(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'bags'
    out.mkdir()
    _lossy(out, 1)
    (out / 'episode_0000.json').write_text(json.dumps({'status': 'complete'}))
    res = RecordResult(out=out, episodes=2, ok=True,
                       statuses={'episode_0000.json': 'complete',
                                 'episode_0001.json': 'complete_with_loss'})
    assert res.complete == 2
    assert res.with_loss == {'episode_0001.json': [
        '/camera/front/image_raw: lost ~10 of 100 (10.0%)']}
    @functools.wraps(record_episodes)            # the parser reads its defaults
    def fake(*a, **k):
        return res
    monkeypatch.setattr('il_ros.recording.record_episodes', fake)
    from il_ros.cli import main
    assert main(['record', '--out', str(out), '--episodes', '2']) == 0
    text = capsys.readouterr().out
    assert 'il-ros record: 1 of 2 episode(s) recorded complete_with_loss' in text
    assert 'episode_0001: /camera/front/image_raw: lost ~10 of 100 (10.0%)' in text


def _cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, '-m', 'il_ros.cli', *args], capture_output=True,
                          text=True, timeout=120)


def test_record_refuses_bad_episodes_and_cameras_before_anything_starts(tmp_path):
    for n in ('-1', '0'):
        res = _cli('record', '--episodes', n, '--out', str(tmp_path / 'a'))
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == f'il-ros record: --episodes must be >= 1, got {n}'
    res = _cli('record', '--cameras', 'nope', '--out', str(tmp_path / 'b'), '--episodes', '1')
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().startswith('il-ros record: ') and res.stderr.strip().endswith(
        "sim_arm.yaml: cameras: the graph argument cameras needs camera(s) ['nope'], the "
        "robot has ['front', 'wrist']"), res.stderr
    assert not (tmp_path / 'b').exists()           # nothing was created or started

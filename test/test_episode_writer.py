"""EpisodeWriter: bags readable by rosbags, metadata stats, drops, bad output paths, ENOSPC."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import get_typestore, Stores

from il_ros.data.episode_writer import EpisodeError, EpisodeWriter, next_episode_index

TS = get_typestore(Stores.ROS2_KILTED)
JS = 'sensor_msgs/msg/JointState'
FLOATS = 'std_msgs/msg/Float64MultiArray'
S = 1_000_000_000


def joint_state(seq: int, stamp_ns: int) -> bytes:
    """Raw CDR of a JointState with ``position[0] == seq``."""
    t = TS.types
    msg = t[JS](header=t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=stamp_ns // S, nanosec=stamp_ns % S),
        frame_id=''), name=['a'], position=np.array([float(seq)]),
        velocity=np.array([], dtype=np.float64), effort=np.array([], dtype=np.float64))
    return bytes(TS.serialize_cdr(msg, JS))


def floats(seq: int) -> bytes:
    t = TS.types
    layout = t['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    return bytes(TS.serialize_cdr(t[FLOATS](layout=layout, data=np.array([float(seq)])),
                                  FLOATS))


def read_bag(path):
    """{topic: [(log_time, decoded message)]} of a bag, via rosbags."""
    out = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, TS.deserialize_cdr(raw, conn.msgtype)))
    return out


def record(out_dir, n=100, skip=(), **kw) -> dict:
    """One episode: /js at 50 Hz header time (log time 1 ms apart), /cmd at receive time."""
    kw.setdefault('queue_size', 10 * n)  # the loop outpaces the writer thread
    ep = EpisodeWriter.open(out_dir, start_time_ns=S, **kw)
    ep.add_topic('/js', JS)
    ep.add_topic('/cmd', FLOATS)
    for i in range(n):
        if i in skip:
            continue
        ep.write('/js', joint_state(i, 5 * S + i * 20_000_000), S + i * 1_000_000)
        if i % 2 == 0:
            ep.write('/cmd', floats(i), S + i * 10_000_000)
    return ep.finish(True, 3 * S)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_is_readable_and_metadata_matches(tmp_path, storage):
    meta = record(tmp_path, storage=storage, task='reach', operator='ann')
    assert (tmp_path / 'episode_0000').is_dir()
    on_disk = json.loads((tmp_path / 'episode_0000.json').read_text())
    assert on_disk == meta
    assert meta['status'] == 'complete' and meta['success'] is True
    assert (meta['task'], meta['operator'], meta['storage']) == ('reach', 'ann', storage)
    bag = read_bag(tmp_path / 'episode_0000')
    assert [m.position[0] for _, m in bag['/js']] == list(range(100))
    assert [m.data[0] for _, m in bag['/cmd']] == list(range(0, 100, 2))
    assert bag['/js'][3][0] == S + 3_000_000  # log time is what the producer passed
    js, cmd = meta['topics']['/js'], meta['topics']['/cmd']
    assert js['time_source'] == 'header' and cmd['time_source'] == 'receive'
    assert js['count'] == 100 and cmd['count'] == 50
    assert js['rate_hz'] == pytest.approx(50.0) and cmd['rate_hz'] == pytest.approx(50.0)
    assert js['duration_s'] == pytest.approx(1.98) and js['gap_count'] == 0
    assert meta['drops_total'] == 0 and meta['warnings'] == []


def test_gaps_use_header_stamps(tmp_path):
    meta = record(tmp_path, skip=range(40, 50))
    js = meta['topics']['/js']
    assert js['gap_count'] == 1
    gap = js['gaps'][0]
    assert (gap['start_ns'], gap['end_ns']) == (5 * S + 39 * 20_000_000, 6 * S)
    assert gap['length_s'] == pytest.approx(0.22)
    assert meta['topics']['/cmd']['gap_count'] == 1  # /cmd skipped 40..48 as well


def test_numbering_continues_and_never_overwrites(tmp_path):
    (tmp_path / 'episode_0004').mkdir()          # e.g. a partial bag from a crash
    (tmp_path / 'episode_0006.json').write_text('{}')  # a discarded episode's record
    assert next_episode_index(tmp_path) == 7
    meta = record(tmp_path, n=5)
    assert meta['bag'] == 'episode_0007'
    assert (tmp_path / 'episode_0006.json').read_text() == '{}'
    assert record(tmp_path, n=5)['bag'] == 'episode_0008'


def test_silent_expected_topic_makes_episode_incomplete(tmp_path):
    meta = record(tmp_path, n=10, expected_topics=['/js', '/camera/never'])
    assert meta['status'] == 'incomplete'
    assert any('/camera/never' in w for w in meta['warnings'])
    assert meta['topics']['/camera/never']['count'] == 0
    assert read_bag(tmp_path / 'episode_0000')['/js']  # the bag itself is fine


def test_discard_removes_bag_keeps_record(tmp_path):
    ep = EpisodeWriter.open(tmp_path, start_time_ns=S)
    ep.add_topic('/js', JS)
    ep.write('/js', joint_state(0, S), S)
    meta = ep.discard(2 * S)
    assert meta['status'] == 'discarded' and not (tmp_path / 'episode_0000').exists()
    assert json.loads((tmp_path / 'episode_0000.json').read_text())['status'] == 'discarded'
    assert record(tmp_path, n=3)['bag'] == 'episode_0001'


def test_unknown_type_is_refused(tmp_path):
    ep = EpisodeWriter.open(tmp_path)
    with pytest.raises(EpisodeError, match='my_pkg/msg/Thing'):
        ep.add_topic('/x', 'my_pkg/msg/Thing')
    ep.finish(None, 0)


class SlowBag:
    """A real rosbags writer whose writes take ``delay`` seconds (a slow disk)."""

    def __init__(self, path, plugin, delay=0.0, fail_after=None):
        self.inner = Writer(path, version=9, storage_plugin=plugin)
        self.delay, self.fail_after, self.n = delay, fail_after, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, conn, t, data):
        time.sleep(self.delay)
        self.n += 1
        if self.fail_after is not None and self.n > self.fail_after:
            raise OSError(errno.ENOSPC, 'No space left on device')
        self.inner.write(conn, t, data)


def test_full_queue_drops_counts_and_never_blocks(tmp_path, caplog):
    ep = EpisodeWriter.open(tmp_path, start_time_ns=S, queue_size=4,
                            bag_factory=lambda p, s: SlowBag(p, s, delay=0.02))
    ep.add_topic('/js', JS)
    accepted, worst = [], 0.0
    for i in range(60):
        t0 = time.perf_counter()
        accepted.append(ep.write('/js', joint_state(i, S + i * 1000), S + i * 1000))
        worst = max(worst, time.perf_counter() - t0)
    meta = ep.finish(True, 2 * S)
    assert worst < 0.01, f'write() blocked for {worst:.3f}s'
    dropped = accepted.count(False)
    assert dropped > 30
    assert meta['topics']['/js']['drops'] == dropped == meta['drops_total']
    assert meta['topics']['/js']['count'] == accepted.count(True) == 60 - dropped
    assert any('dropped' in w and 'queue_size=4' in w for w in meta['warnings'])
    assert any('DROPPED' in r.message for r in caplog.records if r.levelname == 'ERROR')
    kept = [m.position[0] for _, m in read_bag(tmp_path / 'episode_0000')['/js']]
    assert kept == [i for i, ok in enumerate(accepted) if ok]


def test_disk_full_mid_episode_is_reported_and_earlier_episode_survives(tmp_path):
    first = record(tmp_path, n=20)
    ep = EpisodeWriter.open(tmp_path, start_time_ns=S,
                            bag_factory=lambda p, s: SlowBag(p, s, fail_after=5))
    ep.add_topic('/js', JS)
    for i in range(20):
        ep.write('/js', joint_state(i, S + i), S + i)
    deadline = time.monotonic() + 5
    while ep.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ep.error and 'No space left on device' in ep.error
    assert str(tmp_path / 'episode_0001') in ep.error
    assert not ep.alive and ep.write('/js', joint_state(99, S), S) is False
    meta = ep.finish(True, 2 * S)
    assert meta['status'] == 'incomplete' and 'No space left' in meta['error']
    assert first['status'] == 'complete'
    assert len(read_bag(tmp_path / 'episode_0000')['/js']) == 20


def test_output_path_is_a_file(tmp_path):
    target = tmp_path / 'not_a_dir'
    target.write_text('x')
    with pytest.raises(EpisodeError, match=str(target)):
        EpisodeWriter.open(target)
    with pytest.raises(EpisodeError, match=str(target)):
        EpisodeWriter.open(target / 'sub')
    assert target.read_text() == 'x'


def test_output_path_not_writable():
    with pytest.raises(EpisodeError, match='/proc/il_ros_episodes'):
        EpisodeWriter.open('/proc/il_ros_episodes')


def test_real_enospc_on_a_tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs: the disk really fills up (skipped where mounting is not allowed)."""
    mnt = tmp_path / 'tiny'
    mnt.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip('cannot mount a tmpfs here')
    try:
        first = record(mnt, n=5)
        ep = EpisodeWriter.open(mnt, start_time_ns=S)
        ep.add_topic('/js', JS)
        big = joint_state(0, S) + bytes(200_000)  # padding after a valid message
        for i in range(40):
            ep.write('/js', big, S + i)
        meta = ep.finish(True, 2 * S)
        assert meta['status'] == 'incomplete'
        assert 'No space left on device' in meta['error']
        assert first['status'] == 'complete'
        assert len(read_bag(mnt / 'episode_0000')['/js']) == 5
    finally:
        subprocess.run(['umount', str(mnt)], check=False)


def test_writer_thread_is_not_the_caller(tmp_path):
    threads = set()

    class Spy(SlowBag):
        def write(self, conn, t, data):
            threads.add(threading.current_thread().name)
            super().write(conn, t, data)

    ep = EpisodeWriter.open(tmp_path, bag_factory=lambda p, s: Spy(p, s))
    ep.add_topic('/js', JS)
    ep.write('/js', joint_state(0, S), S)
    ep.finish(None, S)
    assert threads == {'episode_0000-writer'}


def test_core_module_runs_without_rclpy(tmp_path):
    code = ('import sys; sys.modules["rclpy"] = None\n'
            'from il_ros.data import episode_writer, bag_info\n'
            f'ep = episode_writer.EpisodeWriter.open({str(tmp_path)!r}); ep.finish(None, 0)\n'
            f'print(bag_info.summarize({str(tmp_path)!r})["bags"][0]["status"])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'complete'

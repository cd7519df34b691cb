"""bag_info: our episode folders, a foreign sqlite3 bag, corrupt and partial bags."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from il_ros.data.bag_info import format_summary, PARTIAL, summarize
from test_episode_writer import FLOATS, JS, joint_state, record, S, TS, floats  # noqa: I100


def test_episode_folder(tmp_path):
    record(tmp_path, n=100, task='reach')
    record(tmp_path, n=50, skip=range(20, 30), expected_topics=['/js', '/cam'])
    summary = summarize(tmp_path)
    assert summary['errors'] == []
    first, second = summary['bags']
    assert (first['name'], first['status'], first['success']) == ('episode_0000', 'complete',
                                                                    True)
    assert first['storage'] == 'mcap' and first['message_count'] == 150
    js = first['topics']['/js']
    assert (js['type'], js['count'], js['time_source']) == (JS, 100, 'header')
    assert js['rate_hz'] == pytest.approx(50.0) and js['gap_count'] == 0
    assert first['topics']['/cmd']['time_source'] == 'receive'
    assert second['status'] == 'incomplete'
    assert second['topics']['/js']['gap_count'] == 1
    assert second['topics']['/js']['gaps'][0]['length_s'] == pytest.approx(0.22)
    assert second['topics']['/cam']['count'] == 0  # expected, never published
    text = format_summary(summary)
    for needle in ('episode_0000', 'episode_0001', 'status: complete', 'status: incomplete',
                   '/js', JS, '50.00', 'gap of 0.220 s', '/cam', '2 bag(s), 0 error(s)'):
        assert needle in text, needle
    assert summarize(tmp_path / 'episode_0000')['bags'][0]['topics'] == first['topics']


def test_foreign_sqlite3_bag(tmp_path):
    """A bag written by plain rosbags (no episode JSON), in sqlite3, with a custom topic."""
    bag = tmp_path / 'foreign'
    with Writer(bag, version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        js = w.add_connection('/robot/joints', JS, typestore=TS)
        cmd = w.add_connection('/cmd', FLOATS, typestore=TS)
        for i in range(30):
            w.write(js, 7 * S + i * 100_000_000, joint_state(i, 2 * S + i * 10_000_000))
            w.write(cmd, 7 * S + i * 200_000_000, floats(i))
    summary = summarize(bag)
    (entry,) = summary['bags']
    assert entry['error'] is None and entry['episode'] is None and entry['status'] is None
    assert entry['storage'] == 'sqlite3' and entry['message_count'] == 60
    joints = entry['topics']['/robot/joints']
    assert joints['time_source'] == 'header' and joints['rate_hz'] == pytest.approx(100.0)
    assert entry['topics']['/cmd']['rate_hz'] == pytest.approx(5.0)
    assert entry['duration_s'] == pytest.approx(5.8)
    assert '/robot/joints' in format_summary(summary)


def test_corrupt_bag_named_and_others_still_summarized(tmp_path):
    for _ in range(3):
        record(tmp_path, n=2000)
    mcap = tmp_path / 'episode_0001' / 'episode_0001.mcap'
    size = mcap.stat().st_size
    with open(mcap, 'r+b') as fh:
        fh.truncate(size // 2)
    summary = summarize(tmp_path)
    assert [b['name'] for b in summary['bags']] == [f'episode_000{i}' for i in range(3)]
    bad = summary['bags'][1]
    assert bad['error'] and str(mcap) in bad['error'] and 'corrupt or truncated' in bad['error']
    assert summary['errors'] == [bad['error']]
    for good in (summary['bags'][0], summary['bags'][2]):
        assert good['error'] is None and good['topics']['/js']['count'] == 2000
    assert f'ERROR: {mcap}' in format_summary(summary)


def test_garbage_file_in_place_of_a_bag(tmp_path):
    bag = tmp_path / 'junk'
    bag.mkdir()
    (bag / 'junk.mcap').write_bytes(b'this is not an mcap file')
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 9}\n')
    (entry,) = summarize(tmp_path)['bags']
    assert entry['error'] and str(bag / 'junk.mcap') in entry['error']


def test_partial_episode(tmp_path):
    """An episode left 'recording' by a recorder that no longer runs is reported partial."""
    record(tmp_path, n=10)
    code = ('import os, sys, time\n'
            'from il_ros.data.episode_writer import EpisodeWriter\n'
            f'ep = EpisodeWriter.open({str(tmp_path)!r})\n'
            'print("open", flush=True); os._exit(0)\n')  # no finish: like a SIGKILL
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and 'open' in out.stdout, out.stderr
    meta = json.loads((tmp_path / 'episode_0001.json').read_text())
    assert meta['status'] == 'recording' and meta['recorder_pid'] != os.getpid()
    summary = summarize(tmp_path)
    ok, partial = summary['bags']
    assert ok['status'] == 'complete' and ok['error'] is None
    assert partial['status'] == PARTIAL == 'partial (recorder stopped mid-episode)'
    assert 'not finalized' in partial['error']
    assert f'status: {PARTIAL}' in format_summary(summary)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        summarize(tmp_path / 'nowhere')

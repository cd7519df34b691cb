"""``il-ros view``: episodes logged to an .rrd and read back with rerun, or sent to a viewer."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import warnings

import numpy as np
import pytest
from rerun.chunk import RrdReader

from il_ros import cli
from il_ros.data.store import Dataset
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag
from il_ros.viewer import view, ViewError
from test_interop_robomimic import LENGTHS, make_dataset


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('view') / 'ds')


def rrd_rows(path) -> dict[str, int]:
    """Rows per entity (temporal data only) and, under '!timelines', each entity's timelines."""
    rows, lines = {}, {}
    for c in RrdReader(path).stream().to_chunks():
        if c.is_static:
            continue
        rows[c.entity_path] = rows.get(c.entity_path, 0) + c.num_rows
        lines.setdefault(c.entity_path, set()).update(c.timeline_names)
    return rows, lines


def rrd_text(path, entity) -> list[str]:
    """Every string value logged at ``entity`` (TextLog text, TextDocument)."""
    out = []
    for c in RrdReader(path).stream().to_chunks():
        if c.entity_path != entity:
            continue
        batch = c.to_record_batch()
        for name in batch.schema.names:
            if name.endswith(':text'):
                for cell in batch.column(name).to_pylist():
                    out += cell or []
    return out


def test_dataset_episode_to_rrd(dataset, tmp_path):
    out = tmp_path / 'ep.rrd'
    r = view(dataset, episode=1, out=out, progress=False)
    n = LENGTHS[1]
    assert r['out'] == str(out) and not r['spawned'] and r['frames'] == n
    assert not list(tmp_path.glob('.*.tmp'))
    rows, lines = rrd_rows(out)
    for e in ('camera/front', 'camera/wrist', 'joint_pos/a', 'joint_pos/d', 'joint_vel/b',
              'action/x', 'action/g', 'control_source/code'):
        assert rows[f'/{e}'] == n, e
        assert {'time', 'frame'} <= lines[f'/{e}'], e
    assert 'joint_pos/j0' not in str(rows)
    # the label changes: policy, pre_intervention, intervention (WARN), policy
    events = rrd_text(out, '/control_source/events')
    assert [e.split(' ')[0] for e in events] == ['policy', 'pre_intervention',
                                                 'intervention', 'policy']
    assert rrd_text(out, '/episode/success') == ['failure']      # episode 1 failed
    assert any('success' in t for t in rrd_text(out, '/episode'))


def test_logged_values_match_the_dataset(dataset, tmp_path):
    out = tmp_path / 'ep.rrd'
    view(dataset, episode=0, out=out, progress=False)
    src = Dataset(dataset).episode(0)
    for c in RrdReader(out).stream().to_chunks():
        if c.entity_path == '/action/y' and not c.is_static:
            b = c.to_record_batch()
            col = next(n for n in b.schema.names if n.endswith(':scalars'))
            got = np.array([v[0] for v in b.column(col).to_pylist()])
            np.testing.assert_allclose(got, src['action'][:, 1], rtol=1e-6)
            t = b.column('time').to_pylist()
            assert t[0].total_seconds() == 0 and len(t) == LENGTHS[0]
            break
    else:
        pytest.fail('no /action/y in the recording')


def test_bag_to_rrd(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'episode_0000', SyntheticBagSpec(
        duration=1.0, control_source=((0.0, 'policy'), (0.5, 'intervention'))))
    r = view(bag, mode='save', progress=False)
    out = tmp_path / 'episode_0000.rrd'
    assert r['out'] == str(out) and out.is_file()
    assert r['frames'] == {'/camera/front/image_raw': 30, '/joint_states': 100,
                           '/il/command': 20, '/il/control_source': 20}
    rows, lines = rrd_rows(out)
    assert rows['/camera/front/image_raw'] == 30
    assert rows['/joint_states/position/j2'] == 100
    assert rows['/il/command/0'] == 20 and rows['/il/control_source/code'] == 20
    assert lines['/joint_states/position/j0'] == {'time'}
    assert [e.split(' ')[0] for e in rrd_text(out, '/il/control_source/events')] == [
        'policy', 'intervention']


def test_bad_input(dataset, tmp_path, capsys):
    with pytest.raises(ViewError, match='does not exist'):
        view(tmp_path / 'nope', progress=False)
    with pytest.raises(ViewError, match=r'episode 5 out of range.*5 episode'):
        view(dataset, episode=5, out=tmp_path / 'x.rrd', progress=False)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ViewError, match='neither a dataset'):
        view(tmp_path / 'empty', progress=False)
    assert not (tmp_path / 'x.rrd').exists() and not list(tmp_path.glob('.*.tmp'))
    bag = tmp_path / 'broken'
    bag.mkdir()
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 8}\n')
    with pytest.raises(ViewError, match='broken'):
        view(bag, mode='save', progress=False)
    assert cli.main(['view', str(dataset), '--episode', '9', '--save']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'episode 9 out of range' in err[0]


def test_cli_writes_rrd(dataset, tmp_path, capsys):
    out = tmp_path / 'v' / 'e.rrd'
    assert cli.main(['view', str(dataset), '--episode', '2', '--out', str(out)]) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    assert rrd_rows(out)[0]['/camera/front'] == LENGTHS[2]


def test_where_it_goes(dataset, tmp_path, monkeypatch):
    import il_ros.viewer as viewer
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    assert not viewer.viewer_available()          # headless: auto saves beside the input
    monkeypatch.setattr(viewer, 'viewer_executable', lambda: None)
    with pytest.raises(ViewError, match='no rerun viewer executable'):
        view(dataset, mode='spawn', progress=False)
    r = view(dataset, episode=3, progress=False)
    assert r['out'] == str(dataset.parent / 'ds_episode_3.rrd') and not r['spawned']
    assert rrd_rows(r['out'])[0]['/camera/front'] == LENGTHS[3]


def test_auto_with_a_display_spawns_a_viewer_that_receives_the_episode(dataset, tmp_path,
                                                                        monkeypatch):
    """The spawn path end to end, with the real ``rerun`` executable.

    It is started as Rerun's SDK starts a viewer, but with ``--save``, so that it writes what
    it receives instead of opening a window; the file then holds the whole episode.
    """
    import il_ros.viewer as viewer
    real = viewer.viewer_executable()
    assert real, 'rerun-sdk ships the rerun executable'
    pid_file, rrd = tmp_path / 'viewer.pid', tmp_path / 'received.rrd'
    fake = tmp_path / 'viewer'
    fake.write_text(f'#!/bin/sh\necho $$ > {pid_file}\nexec {real} --save {rrd} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(viewer, 'viewer_executable', lambda: str(fake))
    monkeypatch.setenv('DISPLAY', ':99')
    assert viewer.viewer_available()
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    try:
        r = view(dataset, episode=1, progress=False, port=port)
        assert r['spawned'] and r['out'] is None and r['frames'] == LENGTHS[1]
        n = {}
        end = time.monotonic() + 30
        while time.monotonic() < end and n.get('/action/x') != LENGTHS[1]:
            time.sleep(0.2)
            if rrd.is_file():
                with warnings.catch_warnings():      # a file still being written: no footer
                    warnings.simplefilter('ignore')
                    n = rrd_rows(rrd)[0]
        for e in ('camera/front', 'camera/wrist', 'action/x', 'control_source/code'):
            assert n.get(f'/{e}') == LENGTHS[1], (e, n)
    finally:
        if pid_file.is_file():                    # the viewer runs in its own session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGINT)

"""LeRobot v3 export and import, checked with the real pyarrow and PyAV.

A small synthetic dataset (3 episodes of 12, 15 and 10 frames, cameras front and wrist at
16x16, 7 joints, 6 actions, labels with an intervention, success True/False/None) is
exported once per module; the tests read the export back with pyarrow and PyAV, round-trip
it through import_lerobot, and break copies of it to check the error messages.

Image bound of the round trip: the frames are smooth gradients whose colours step from frame
to frame, camera to camera and episode to episode, encoded as LeRobot records (AV1 via
libsvtav1, yuv420p, CRF 30, GOP 2). Measured here: mean |error| 2.3-2.4 grey levels, max
10-12, PSNR 38.6-38.9 dB per camera and episode. The test allows mean |error| <= 4 and PSNR
>= 32 dB. Lossy by design: CRF 30 quantizes, and yuv420p halves the chroma resolution, so
single pixels can be off by far more than the mean (a max bound would test the content, not
the code). A wrong frame fails it: the next frame of the same camera differs by mean 6.7
(29.7 dB), the other camera by 6.7 (26.9 dB), the next episode by 8.3 (24.9 dB). Each
imported frame must also be nearest to its own source frame.
"""
from __future__ import annotations

import json
from pathlib import Path
import shutil

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from il_ros import keys
from il_ros.cli import main
from il_ros.config import ConfigError
from il_ros.data.store import Dataset, DatasetWriter, encode_labels
from il_ros.interop.lerobot import (export_lerobot, import_lerobot, LeRobotFormatError,
                                    LeRobotMap, load_lerobot_map)

LENGTHS = (12, 15, 10)
CAMS = ('front', 'wrist')
FPS = 20
SUCCESS = (True, False, None)
MEAN_ABS_BOUND = 4.0
PSNR_BOUND_DB = 32.0
REPO = Path(__file__).resolve().parent.parent


def make_dataset(path: Path, size=(16, 16)) -> Path:
    """The synthetic dataset of the module docstring."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with DatasetWriter(path) as wr:
        for e, n in enumerate(LENGTHS):
            rng = np.random.default_rng(e)
            fr = {}
            for c, cam in enumerate(CAMS):
                fr[keys.image_key(cam)] = np.stack([np.stack(
                    [10 + xx * 5 + 8 * k + 20 * c, 20 + yy * 6 + 25 * e,
                     np.full_like(xx, 30 + 12 * k)], -1) for k in range(n)]).astype(np.uint8)
            fr[keys.OBS_JOINT_POS] = rng.normal(size=(n, 7)).astype(np.float32)
            fr[keys.ACTION] = rng.normal(size=(n, 6)).astype(np.float32)
            labels = ['demo'] * n
            labels[n // 2 - 1] = 'pre_intervention'
            labels[n // 2:n // 2 + 3] = ['intervention'] * 3
            labels[-1] = 'hold'
            fr['label'] = encode_labels(labels)
            fr['time'] = 50.0 + np.arange(n) / FPS
            wr.append_episode(fr, {'task': 'lift', 'rate_hz': float(FPS),
                                   'success': SUCCESS[e], 'source_id': f'ep{e}',
                                   'joint_names': [f'j{i}' for i in range(7)]})
    return path


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('lerobot')
    ds = make_dataset(root / 'ds')
    summary = export_lerobot(ds, root / 'lr', progress=False)
    return ds, root / 'lr', summary


def _info(lr: Path) -> dict:
    return json.loads((lr / 'meta/info.json').read_text())


def _broken_copy(lr: Path, tmp_path: Path) -> Path:
    dst = tmp_path / 'broken'
    shutil.copytree(lr, dst)
    return dst


def _edit_info(lr: Path, edit) -> None:
    info = _info(lr)
    edit(info)
    (lr / 'meta/info.json').write_text(json.dumps(info))


# ---- export, read with pyarrow and PyAV ----------------------------------------------------
def test_info_json_has_the_v3_fields(exported):
    _, lr, summary = exported
    info = _info(lr)
    total = sum(LENGTHS)
    assert summary['episodes'] == 3 and summary['frames'] == total and summary['fps'] == FPS
    assert info['codebase_version'] == 'v3.0'
    assert (info['fps'], info['total_episodes'], info['total_frames'], info['total_tasks']) \
        == (FPS, 3, total, 1)
    assert (info['chunks_size'], info['data_files_size_in_mb'],
            info['video_files_size_in_mb']) == (1000, 100, 200)
    assert info['data_path'] == 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
    assert info['video_path'] == ('videos/{video_key}/chunk-{chunk_index:03d}/'
                                  'file-{file_index:03d}.mp4')
    assert 'robot_type' in info and info['splits'] == {'train': '0:3'}
    f = info['features']
    assert f['observation.state'] == {'dtype': 'float32', 'shape': [7],
                                      'names': [f'j{i}' for i in range(7)]}
    assert f['action']['dtype'] == 'float32' and f['action']['shape'] == [6]
    for name in ('timestamp',):
        assert f[name] == {'dtype': 'float32', 'shape': [1], 'names': None}
    for name in ('frame_index', 'episode_index', 'index', 'task_index', 'il_ros.success'):
        assert f[name] == {'dtype': 'int64', 'shape': [1], 'names': None}
    assert f['il_ros.label']['info']['label_names'] == list(keys.LABEL_NAMES)
    assert f['il_ros.time']['dtype'] == 'float64'
    for cam in CAMS:
        v = f[f'observation.images.{cam}']
        assert v['dtype'] == 'video' and v['shape'] == [16, 16, 3]
        assert v['names'] == ['height', 'width', 'channels']
        assert v['info']['video.fps'] == FPS and v['info']['video.pix_fmt'] == 'yuv420p'
        assert (v['info']['video.height'], v['info']['video.width']) == (16, 16)
        assert v['info']['video.codec'] in ('av1', 'h264', 'hevc', 'mpeg4')
        assert v['info']['is_depth_map'] is False


def test_frame_rows_in_the_data_parquet(exported):
    ds_path, lr, _ = exported
    t = pq.read_table(lr / 'data/chunk-000/file-000.parquet')
    total = sum(LENGTHS)
    assert t.num_rows == total
    s = t.schema
    assert s.field('observation.state').type == pa.list_(pa.float32(), 7)
    assert s.field('action').type == pa.list_(pa.float32(), 6)
    assert s.field('timestamp').type == pa.float32()
    for name in ('frame_index', 'episode_index', 'index', 'task_index', 'il_ros.label',
                 'il_ros.success'):
        assert s.field(name).type == pa.int64(), name
    assert not any(n.startswith('observation.images') for n in s.names)
    ep = t.column('episode_index').to_numpy()
    fi = t.column('frame_index').to_numpy()
    assert np.array_equal(ep, np.repeat(np.arange(3), LENGTHS))
    assert np.array_equal(fi, np.concatenate([np.arange(n) for n in LENGTHS]))
    assert np.array_equal(t.column('index').to_numpy(), np.arange(total))
    assert np.allclose(t.column('timestamp').to_numpy(), fi / FPS, atol=1e-6)
    assert set(t.column('task_index').to_numpy()) == {0}
    ds = Dataset(ds_path)
    state = np.stack(t.column('observation.state').to_numpy(zero_copy_only=False))
    labels = t.column('il_ros.label').to_numpy()
    success = t.column('il_ros.success').to_numpy()
    for e in range(3):
        rows = ep == e
        assert np.array_equal(state[rows], ds.episode(e)['joint_pos'])
        assert np.array_equal(labels[rows], ds.episode(e)['label'])
        want = -1 if SUCCESS[e] is None else int(SUCCESS[e])
        assert set(success[rows]) == {want}


def test_episodes_tasks_and_stats_metadata(exported):
    _, lr, _ = exported
    t = pq.read_table(lr / 'meta/episodes/chunk-000/file-000.parquet')
    rows = t.to_pylist()
    assert [r['episode_index'] for r in rows] == [0, 1, 2]
    assert [r['length'] for r in rows] == list(LENGTHS)
    assert all(r['tasks'] == ['lift'] for r in rows)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)])
    for r, a, b in zip(rows, starts[:-1], starts[1:]):
        assert (r['dataset_from_index'], r['dataset_to_index']) == (a, b)
        assert (r['data/chunk_index'], r['data/file_index']) == (0, 0)
        assert (r['meta/episodes/chunk_index'], r['meta/episodes/file_index']) == (0, 0)
        for cam in CAMS:
            pre = f'videos/observation.images.{cam}/'
            assert (r[pre + 'chunk_index'], r[pre + 'file_index']) == (0, 0)
            assert r[pre + 'from_timestamp'] == pytest.approx(a / FPS)
            assert r[pre + 'to_timestamp'] == pytest.approx(b / FPS)
        assert r['stats/action/count'] == [r['length']]
        assert np.array(r['stats/observation.images.front/mean']).shape == (3, 1, 1)
    tasks = pq.read_table(lr / 'meta/tasks.parquet')
    assert tasks.to_pylist() == [{'task_index': 0, 'task': 'lift'}]
    pandas_meta = json.loads(tasks.schema.metadata[b'pandas'])
    assert pandas_meta['index_columns'] == ['task']       # pandas reads task as the index
    stats = json.loads((lr / 'meta/stats.json').read_text())
    assert set(stats) == set(_info(lr)['features'])
    assert stats['action']['count'] == [sum(LENGTHS)]
    assert len(stats['observation.state']['mean']) == 7
    for k in ('min', 'max', 'mean', 'std', 'q01', 'q10', 'q50', 'q90', 'q99'):
        v = np.array(stats['observation.images.wrist'][k])
        assert v.shape == (3, 1, 1) and (0 <= v).all() and (v <= 1).all(), k


def test_videos_hold_every_frame_at_its_timestamp(exported):
    _, lr, _ = exported
    total = sum(LENGTHS)
    for cam in CAMS:
        path = lr / f'videos/observation.images.{cam}/chunk-000/file-000.mp4'
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            assert s.average_rate == FPS and (s.width, s.height) == (16, 16)
            times = [f.time for f in c.decode(s)]
        assert len(times) == total
        assert np.allclose(times, np.arange(total) / FPS, atol=1e-6)
        rows = pq.read_table(lr / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
        pre = f'videos/observation.images.{cam}/'
        for r in rows:
            inside = [t for t in times if r[pre + 'from_timestamp'] - 1e-6 <= t
                      < r[pre + 'to_timestamp'] - 1e-6]
            assert len(inside) == r['length']


# ---- round trip ----------------------------------------------------------------------------
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _nearest_frames(src: np.ndarray, got: np.ndarray) -> list[int]:
    """For each decoded frame, the index of the source frame it is closest to (MSE)."""
    d = ((got[:, None].astype(np.float64) - src[None]) ** 2).mean(axis=(2, 3, 4))
    return d.argmin(axis=1).tolist()


def test_round_trip_is_exact_but_for_codec_loss(exported, tmp_path):
    ds_path, lr, _ = exported
    s = import_lerobot(lr, tmp_path / 'back', progress=False)
    assert (s['episodes'], s['skipped'], s['frames']) == (3, 0, sum(LENGTHS))
    a, b = Dataset(ds_path), Dataset(tmp_path / 'back')
    assert b.keys == a.keys and b.num_episodes == 3
    for e in range(3):
        ea, eb = a.episode(e), b.episode(e)
        for k in ('joint_pos', 'action', 'label', 'time'):
            assert eb[k].dtype == ea[k].dtype and np.array_equal(eb[k], ea[k]), (e, k)
        assert b.meta(e)['success'] == SUCCESS[e]
        assert b.meta(e)['joint_names'] == a.meta(e)['joint_names']
        assert b.meta(e)['lerobot']['episode_index'] == e
        for cam in CAMS:
            x, y = ea[keys.image_key(cam)], eb[keys.image_key(cam)]
            assert y.shape == x.shape and y.dtype == np.uint8
            assert np.abs(x.astype(int) - y).mean() <= MEAN_ABS_BOUND, (e, cam)
            assert _psnr(x, y) >= PSNR_BOUND_DB, (e, cam)
            assert _nearest_frames(x, y) == list(range(len(x))), (e, cam)
    again = import_lerobot(lr, tmp_path / 'back', progress=False)
    assert (again['episodes'], again['skipped']) == (0, 3)


def test_files_roll_over_and_import_follows_them(exported, tmp_path):
    ds_path, _, _ = exported
    lr = tmp_path / 'lr'
    # mpeg4 hands out each packet as soon as its frame is in (AV1 and h264 hold some frames
    # back), so a tiny limit rolls the video over after every episode.
    export_lerobot(ds_path, lr, episodes=[2, 0], progress=False, vcodec='mpeg4',
                   data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    assert _info(lr)['features']['observation.images.front']['info']['video.codec'] == 'mpeg4'
    rows = pq.read_table(lr / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
    assert [r['data/file_index'] for r in rows] == [0, 1]
    assert [r['videos/observation.images.front/file_index'] for r in rows] == [0, 1]
    assert rows[1]['videos/observation.images.front/from_timestamp'] == 0.0
    assert (lr / 'videos/observation.images.front/chunk-000/file-001.mp4').is_file()
    assert (lr / 'data/chunk-000/file-001.parquet').is_file()
    import_lerobot(lr, tmp_path / 'back', progress=False)
    a, b = Dataset(ds_path), Dataset(tmp_path / 'back')
    for new, old in enumerate([2, 0]):
        assert np.array_equal(b.episode(new)['action'], a.episode(old)['action'])
        for cam in CAMS:
            src, got = a.episode(old)[keys.image_key(cam)], b.episode(new)[keys.image_key(cam)]
            assert _nearest_frames(src, got) == list(range(len(src)))   # mpeg4 is lossier


def test_default_map_file_matches_the_defaults():
    assert load_lerobot_map(REPO / 'config/interop/lerobot_map.yaml') == LeRobotMap()


def test_map_renames_cameras_and_drops_labels(exported, tmp_path):
    _, lr, _ = exported
    m = tmp_path / 'map.yaml'
    m.write_text('cameras: {top: observation.images.front}\nlabel: none_here\n')
    import_lerobot(lr, tmp_path / 'back', mapping=m, progress=False)
    b = Dataset(tmp_path / 'back')
    assert 'image/top' in b.keys and 'image/wrist' not in b.keys
    assert not b.episode(0)['label'].any()            # no label feature: all demo
    m.write_text('joint_state: observation.state\nbogus: 1\n')
    with pytest.raises(ConfigError, match=r'map\.yaml.*bogus'):
        load_lerobot_map(m)


# ---- bad input -----------------------------------------------------------------------------
def test_missing_feature_names_info_json_and_the_feature(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    _edit_info(lr, lambda i: i['features'].pop('observation.state'))
    with pytest.raises(LeRobotFormatError,
                       match=r"meta/info\.json: features has no 'observation\.state' "
                             r"\(the map's joint_state\)"):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_nan_in_a_parquet_column_names_file_column_and_frame(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    p = lr / 'data/chunk-000/file-000.parquet'
    t = pq.read_table(p)
    act = np.stack(t.column('action').to_numpy(zero_copy_only=False)).copy()
    act[LENGTHS[0] + 4, 2] = np.nan                      # episode 1, frame 4
    col = pa.FixedSizeListArray.from_arrays(pa.array(act.reshape(-1)), 6)
    pq.write_table(t.set_column(t.schema.get_field_index('action'), 'action', col), p)
    with pytest.raises(LeRobotFormatError,
                       match=r'data/chunk-000/file-000\.parquet: action: NaN/Inf in '
                             r'episode 1 at frame 4'):
        import_lerobot(lr, tmp_path / 'out', progress=False)
    assert Dataset(tmp_path / 'out').num_episodes == 1   # episode 0 was kept


def test_truncated_mp4_names_the_video(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    p = lr / 'videos/observation.images.wrist/chunk-000/file-000.mp4'
    p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])
    with pytest.raises(LeRobotFormatError,
                       match=r'observation\.images\.wrist/chunk-000/file-000\.mp4: '
                             r'(not a readable video|broken video|video ends)'):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_short_video_names_the_episode(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    p = lr / 'meta/episodes/chunk-000/file-000.parquet'
    t = pq.read_table(p)
    key = 'videos/observation.images.front/from_timestamp'
    starts = t.column(key).to_numpy().copy()
    starts[2] += 0.5                  # episode 2's frames now run past the file's end
    pq.write_table(t.set_column(t.schema.get_field_index(key), key, pa.array(starts)), p)
    with pytest.raises(LeRobotFormatError,
                       match=r'file-000\.mp4: observation\.images\.front: video ends before '
                             r'episode 2 does'):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_wrong_shape_names_the_column(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    _edit_info(lr, lambda i: i['features']['observation.state'].update(shape=[8]))
    with pytest.raises(LeRobotFormatError,
                       match=r'file-000\.parquet: observation\.state: episode 0 frame 0 has 7 '
                             r'values, info\.json says shape \[8\]'):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_fps_mismatch_is_refused(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    _edit_info(lr, lambda i: i.update(fps=10))
    with pytest.raises(LeRobotFormatError,
                       match=r'file-000\.parquet: timestamp of episode 0 steps by 0\.0500 s at '
                             r'frame 1, not 1/fps = 0\.1000 s \(info\.json fps 10\)'):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_not_v3_is_refused(exported, tmp_path):
    lr = _broken_copy(exported[1], tmp_path)
    _edit_info(lr, lambda i: i.update(codebase_version='v2.1'))
    with pytest.raises(LeRobotFormatError, match=r"codebase_version 'v2\.1' is not v3\.x "
                                                 r'\(convert it'):
        import_lerobot(lr, tmp_path / 'out', progress=False)


def test_export_refuses_bad_input_and_leaves_nothing(exported, tmp_path):
    ds_path, _, _ = exported
    with pytest.raises(LeRobotFormatError, match=r'episodes \[5\]: give distinct indices'):
        export_lerobot(ds_path, tmp_path / 'a', episodes=[5], progress=False)
    with pytest.raises(LeRobotFormatError, match=r'fps 30 does not match the episodes\' '
                                                 r'rate_hz 20'):
        export_lerobot(ds_path, tmp_path / 'a', fps=30, progress=False)
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'x').write_text('mine')
    with pytest.raises(LeRobotFormatError, match=r'full: exists and is not an empty folder'):
        export_lerobot(ds_path, tmp_path / 'full', progress=False)
    odd = tmp_path / 'odd'
    with DatasetWriter(odd) as w:
        w.append_episode({'image/front': np.zeros((3, 15, 16, 3), np.uint8),
                          'joint_pos': np.zeros((3, 2), np.float32),
                          'action': np.zeros((3, 2), np.float32)}, {'rate_hz': 10})
    with pytest.raises(LeRobotFormatError, match=r'image/front is 15x16; yuv420p video needs '
                                                 r'an even height and width'):
        export_lerobot(odd, tmp_path / 'b', progress=False)
    gap = tmp_path / 'gap'                     # a dropped tick: LeRobot's frames are 1/fps apart
    with DatasetWriter(gap) as w:
        w.append_episode({'joint_pos': np.zeros((4, 2), np.float32),
                          'action': np.zeros((4, 2), np.float32),
                          'time': np.array([0.0, 0.1, 0.3, 0.4])}, {'rate_hz': 10})
    with pytest.raises(LeRobotFormatError, match=r'ep_000000\.h5: time steps by 0\.2000 s at '
                                                 r'frame 2, not 1/fps = 0\.1000 s \(fps 10'):
        export_lerobot(gap, tmp_path / 'c', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['full', 'gap', 'odd']


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_export_import_and_one_line_errors(exported, tmp_path, capsys):
    ds_path, _, _ = exported
    assert main(['export', str(ds_path), '--format', 'lerobot', '--out', str(tmp_path / 'lr'),
                 '--episodes', '1']) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith('exported 1 episodes, 15 frames at 20 fps')
    assert main(['import', str(tmp_path / 'lr'), '--format', 'lerobot',
                 '--out', str(tmp_path / 'back')]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith('imported 1 episodes (0 already there), 15 frames at 20 fps')
    assert main(['import', str(ds_path), '--format', 'lerobot',
                 '--out', str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'il-ros import: {ds_path}/meta/info.json: missing (not a LeRobot dataset '
                   'folder)']
    assert main(['export', str(tmp_path / 'nothing'), '--format', 'lerobot',
                 '--out', str(tmp_path / 'y')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('il-ros export: ') and 'nothing' in err[0]


def test_image_features_in_the_parquet_rows_import(exported, tmp_path):
    """A camera stored as LeRobot ``image`` (PNG bytes per row) imports losslessly."""
    import cv2
    ds_path, lr0, _ = exported
    lr = _broken_copy(lr0, tmp_path)
    p = lr / 'data/chunk-000/file-000.parquet'
    t = pq.read_table(p)
    src = Dataset(ds_path)
    pngs = [{'bytes': cv2.imencode('.png', cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes(),
             'path': None}
            for e in range(3) for img in src.episode(e)['image/front']]
    pq.write_table(t.append_column('observation.images.front', pa.array(pngs)), p)
    shutil.rmtree(lr / 'videos/observation.images.front')
    _edit_info(lr, lambda i: i['features']['observation.images.front'].update(
        dtype='image', info=None))
    import_lerobot(lr, tmp_path / 'back', progress=False)
    back = Dataset(tmp_path / 'back')
    for e in range(3):
        assert np.array_equal(back.episode(e)['image/front'], src.episode(e)['image/front'])
        assert _psnr(src.episode(e)['image/wrist'], back.episode(e)['image/wrist']) \
            >= PSNR_BOUND_DB

"""The LeRobot v3 writer behind il_ros.interop.lerobot.export_lerobot.

The layout and the decisions are in il_ros.interop.lerobot's docstring. Frames are written
one episode at a time: its Parquet rows go to the open data file, its frames to each
camera's open MP4 stream, and its metadata row and stats are kept for the meta/ files,
which are written last.
"""
from __future__ import annotations

from fractions import Fraction
import json
import os
from pathlib import Path
import shutil

import numpy as np

from il_ros import keys
from il_ros.interop.lerobot_format import (
    ACTION, aggregate_stats, chunk_next, CODEBASE_VERSION, CHUNKS_SIZE, DATA_PATH,
    DEFAULT_FEATURES, EPISODES_PATH, feature_stats, first_off_grid, GOP, IMAGES_PREFIX, INFO_PATH,
    jsonable_stats, LABEL, LeRobotFormatError, META_COLUMN, pick_vcodec, PIX_FMT, STATE,
    STATS_PATH, SUCCESS, TASKS_PATH, TIME, VELOCITY, VIDEO_PATH)


class _VideoSink:
    """One camera's MP4 files; episodes are appended, a file rolls over when full."""

    def __init__(self, root: Path, key: str, size: tuple[int, int], fps: int, vcodec: str,
                 crf: int, limit_mb: float):
        self.root, self.key, self.size, self.fps = root, key, size, fps
        self.vcodec, self.crf, self.limit = vcodec, crf, limit_mb * 1024 * 1024
        self.chunk, self.file = 0, 0
        self.container = None
        self.frames = 0           # frames in the open file
        self.bytes = 0

    def path(self, chunk: int, file: int) -> Path:
        return self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=chunk,
                                             file_index=file)

    def _open(self):
        import av
        p = self.path(self.chunk, self.file)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(p), 'w')
        opts = {'g': str(GOP)}
        if self.vcodec in ('libsvtav1', 'h264', 'hevc', 'libx264', 'libx265'):
            opts['crf'] = str(self.crf)
        if self.vcodec == 'libsvtav1':
            opts['preset'] = '12'
        self.stream = self.container.add_stream(self.vcodec, rate=Fraction(self.fps, 1),
                                                options=opts)
        self.stream.height, self.stream.width = self.size
        self.stream.pix_fmt = PIX_FMT
        if 'crf' not in opts:       # mpeg4: no CRF; 2 bits per pixel, far above its default
            self.stream.bit_rate = max(200_000, 2 * self.size[0] * self.size[1] * self.fps)
        self.stream.time_base = Fraction(1, self.fps)
        self.frames = self.bytes = 0

    def _mux(self, packets):
        for p in packets:
            self.bytes += p.size
            self.container.mux(p)

    def add_episode(self, images: np.ndarray) -> dict:
        """Encode one episode's (T, H, W, 3) frames; returns its episodes-table columns."""
        import av
        if self.container is not None and self.bytes >= self.limit:
            self.close()
            self.chunk, self.file = chunk_next(self.chunk, self.file)
        if self.container is None:
            self._open()
        start = self.frames
        for img in images:
            frame = av.VideoFrame.from_ndarray(img, format='rgb24')
            frame.pts = self.frames
            self._mux(self.stream.encode(frame))
            self.frames += 1
        pre = f'videos/{self.key}/'
        return {pre + 'chunk_index': self.chunk, pre + 'file_index': self.file,
                pre + 'from_timestamp': start / self.fps,
                pre + 'to_timestamp': self.frames / self.fps}

    def close(self):
        if self.container is not None:
            self._mux(self.stream.encode())
            self.container.close()
            self.container = None


class _DataSink:
    """The frame rows' Parquet files; episodes are appended, a file rolls over when full."""

    def __init__(self, root: Path, schema, limit_mb: float):
        self.root, self.schema, self.limit = root, schema, limit_mb * 1024 * 1024
        self.chunk, self.file = 0, 0
        self.writer = None
        self.bytes = 0

    def add_episode(self, table) -> dict:
        import pyarrow.parquet as pq
        if self.writer is not None and self.bytes >= self.limit:
            self.close()
            self.chunk, self.file = chunk_next(self.chunk, self.file)
        if self.writer is None:
            p = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            p.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(str(p), self.schema)
            self.bytes = 0
        self.writer.write_table(table)
        self.bytes += table.nbytes
        return {'data/chunk_index': self.chunk, 'data/file_index': self.file}

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _export_fps(ds, eps: list[int], fps) -> int:
    """The integer fps of the exported episodes (see the module docstring)."""
    where = ds.path / 'manifest.json'
    rates = set()
    for i in eps:
        meta = ds.meta(i)
        r = meta.get('rate_hz', meta.get('fps'))
        if r is not None:
            rates.add(float(r))
    if len(rates) > 1:
        raise LeRobotFormatError(f'{where}: episodes have different rate_hz {sorted(rates)}; '
                                 'LeRobot has one fps per dataset (export them separately '
                                 'with --episodes)')
    rate = rates.pop() if rates else None
    if fps is not None:
        if rate is not None and abs(float(fps) - rate) > 1e-6:
            raise LeRobotFormatError(f'{where}: fps {fps} does not match the episodes\' '
                                     f'rate_hz {rate:g}')
        rate = float(fps)
    if rate is None and _has_time(ds):
        t = ds.read('time', eps[0], 0, int(ds.episode_lengths[eps[0]]))
        if len(t) > 1:
            rate = 1.0 / float(np.median(np.diff(t)))
            if abs(rate - round(rate)) < 0.01 * rate:
                rate = float(round(rate))
    if rate is None:
        raise LeRobotFormatError(f'{where}: the episodes record no rate_hz and no time; '
                                 'give fps (--fps)')
    if rate <= 0 or abs(rate - round(rate)) > 1e-6:
        raise LeRobotFormatError(f'{where}: rate_hz {rate:g} is not a whole number; LeRobot '
                                 'stores an integer fps')
    return int(round(rate))


def _has_time(ds) -> bool:
    """Whether the dataset stores per-frame times."""
    return 'time' in ds.shapes


def _names(meta_names, n: int, prefix: str) -> list[str]:
    if isinstance(meta_names, list) and len(meta_names) == n and all(
            isinstance(x, str) for x in meta_names):
        return list(meta_names)
    return [f'{prefix}_{i}' for i in range(n)]


def _pa_type(dtype: np.dtype, shape: tuple):
    import pyarrow as pa
    base = pa.from_numpy_dtype(dtype)
    if shape in ((), (1,)):
        return base
    if len(shape) != 1:
        raise NotImplementedError(f'exporting a {len(shape)}-D per-frame feature')
    return pa.list_(base, shape[0])


def _column(arr: np.ndarray, shape: tuple):
    """A (T, ...) array as a pyarrow column of the type :func:`_pa_type` gives."""
    import pyarrow as pa
    if shape in ((), (1,)):
        return pa.array(arr.reshape(len(arr)))
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), shape[0])


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """Write meta/tasks.parquet: column task_index, the task strings as pandas index 'task'.

    That is what LeRobot's ``write_tasks`` writes from a DataFrame indexed by task.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    pandas_meta = {
        'index_columns': ['task'],
        'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                            'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
        'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
                     'numpy_type': 'int64', 'metadata': None},
                    {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode',
                     'numpy_type': 'object', 'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.2.3'}
    schema = pa.schema([('task_index', pa.int64()), ('task', pa.string())],
                       metadata={b'pandas': json.dumps(pandas_meta).encode()})
    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      'task': pa.array(tasks, pa.string())}, schema=schema)
    pq.write_table(table, str(path))


def _video_info(path: Path, vcodec: str, crf: int) -> dict:
    """A video feature's ``info`` as LeRobot's get_video_info probes it."""
    import av
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {'video.height': s.height, 'video.width': s.width,
                'video.codec': s.codec_context.codec.canonical_name,
                'video.pix_fmt': s.pix_fmt, 'video.fps': int(s.base_rate),
                'video.channels': 3, 'has_audio': bool(c.streams.audio)}
    info.update({'video.g': GOP, 'video.crf': crf if vcodec != 'mpeg4' else None,
                 'is_depth_map': False})
    return {k: v for k, v in info.items() if v is not None}


def export(dataset_dir, out_dir, *, fps, episodes, task, vcodec, crf: int, progress: bool,
           data_files_size_in_mb: float, video_files_size_in_mb: float) -> dict:
    """il_ros.interop.lerobot.export_lerobot (see there)."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from il_ros.data.store import Dataset, is_image_key, LABEL_KEY, TIME_KEY
    t0 = time.monotonic()
    ds = Dataset(dataset_dir)
    where = ds.path / 'manifest.json'
    if ds.num_episodes == 0:
        raise LeRobotFormatError(f'{where}: the dataset has no episodes')
    eps = list(range(ds.num_episodes)) if episodes is None else [int(e) for e in episodes]
    bad = [e for e in eps if not 0 <= e < ds.num_episodes]
    if bad or not eps or len(set(eps)) != len(eps):
        raise LeRobotFormatError(f'episodes {list(episodes)}: give distinct indices in '
                                 f'[0, {ds.num_episodes})')
    for k in (keys.OBS_JOINT_POS, keys.ACTION):
        if k not in ds.shapes:
            raise LeRobotFormatError(f'{where}: the dataset has no {k!r} (keys: {ds.keys})')
    fps = _export_fps(ds, eps, fps)
    cams = sorted(k[len(keys.OBS_IMAGE_PREFIX):] for k in ds.keys if is_image_key(k))
    for c in cams:
        h, w, _ = ds.shapes[keys.image_key(c)]
        if h % 2 or w % 2:
            raise LeRobotFormatError(f'{where}: image/{c} is {h}x{w}; {PIX_FMT} video needs '
                                     'an even height and width')
    vcodec = pick_vcodec(vcodec)
    os.environ.setdefault('SVT_LOG', '1')      # SVT-AV1 prints its config otherwise
    metas = [ds.meta(i) for i in eps]
    ep_tasks = [task or m.get('task') or ds.path.name for m in metas]
    tasks = list(dict.fromkeys(ep_tasks))
    first = metas[0]

    # Features, in LeRobot's order: ours, then its default ones.
    low = [(keys.OBS_JOINT_POS, STATE), (keys.OBS_JOINT_VEL, VELOCITY), (keys.ACTION, ACTION)]
    low = [(k, f) for k, f in low if k in ds.shapes]
    extras = [k for k in ds.keys if not is_image_key(k) and k not in
              (keys.OBS_JOINT_POS, keys.OBS_JOINT_VEL, keys.ACTION, LABEL_KEY, TIME_KEY)]
    low += [(k, f'il_ros.{k}') for k in extras]
    features, types = {}, {}
    for k, f in low:
        shape = ds.shapes[k]
        if len(shape) > 1:
            raise LeRobotFormatError(f'{where}: {k} has per-frame shape {list(shape)}; only '
                                     'scalars and vectors are exported')
        shape = shape or (1,)
        names = (_names(first.get('joint_names'), shape[0], 'joint') if k != keys.ACTION
                 else _names(first.get('action_names'), shape[0], 'action'))
        if k in extras:
            names = None
        features[f] = {'dtype': ds.dtypes[k].name, 'shape': list(shape), 'names': names}
        types[f] = _pa_type(ds.dtypes[k], tuple(shape))
    for c in cams:
        h, w, ch = ds.shapes[keys.image_key(c)]
        features[IMAGES_PREFIX + c] = {'dtype': 'video', 'shape': [h, w, ch],
                                       'names': ['height', 'width', 'channels'], 'info': None}
    features[LABEL] = {'dtype': 'int64', 'shape': [1], 'names': None,
                       'info': {'label_names': list(ds.label_names)}}
    features[SUCCESS] = {'dtype': 'int64', 'shape': [1], 'names': None}
    types[LABEL] = types[SUCCESS] = pa.int64()
    if TIME_KEY in ds.shapes:
        features[TIME] = {'dtype': 'float64', 'shape': [1], 'names': None}
        types[TIME] = pa.float64()
    features['timestamp'] = {'dtype': 'float32', 'shape': [1], 'names': None}
    types['timestamp'] = pa.float32()
    for f in DEFAULT_FEATURES[1:]:
        features[f] = {'dtype': 'int64', 'shape': [1], 'names': None}
        types[f] = pa.int64()
    schema = pa.schema([(f, types[f]) for f in features if features[f]['dtype'] != 'video'])

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LeRobotFormatError(f'{out}: exists and is not an empty folder; give a new '
                                 '--out')
    tmp = out.parent / f'.{out.name}.tmp-{os.getpid()}'
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    sinks = {}
    data = _DataSink(tmp, schema, data_files_size_in_mb)
    try:
        sinks = {c: _VideoSink(tmp, IMAGES_PREFIX + c, ds.shapes[keys.image_key(c)][:2], fps,
                               vcodec, crf, video_files_size_in_mb) for c in cams}
        rows, ep_stats, total = [], [], 0
        for new, (i, meta) in enumerate(tqdm(list(zip(eps, metas)), desc='export lerobot',
                                             unit='episode', disable=not progress)):
            fr = ds.episode(i)
            n = int(ds.episode_lengths[i])
            off = first_off_grid(fr[TIME_KEY], fps) if TIME_KEY in fr and n > 1 else None
            if off:
                raise LeRobotFormatError(
                    f'{ds.episode_file(i)}: time steps by {off[1]:.4f} s at frame {off[0]},'
                    f' not 1/fps = {1.0 / fps:.4f} s (fps {fps})')
            succ = meta.get('success')
            succ = -1 if succ is None else int(bool(succ))
            label = fr[LABEL_KEY].astype(np.int64) if LABEL_KEY in fr else np.zeros(n, np.int64)
            values = {f: fr[k] for k, f in low}
            values[LABEL] = label
            values[SUCCESS] = np.full(n, succ, np.int64)
            if TIME_KEY in fr:
                values[TIME] = fr[TIME_KEY].astype(np.float64)
            values['timestamp'] = (np.arange(n) / fps).astype(np.float32)
            values['frame_index'] = np.arange(n, dtype=np.int64)
            values['episode_index'] = np.full(n, new, np.int64)
            values['index'] = np.arange(total, total + n, dtype=np.int64)
            values['task_index'] = np.full(n, tasks.index(ep_tasks[new]), np.int64)
            table = pa.table([_column(values[f], tuple(features[f]['shape']))
                              for f in schema.names], schema=schema)
            row = {'episode_index': new, 'tasks': [ep_tasks[new]], 'length': n}
            row.update(data.add_episode(table))
            row.update(dataset_from_index=total, dataset_to_index=total + n)
            stats = {f: feature_stats(values[f], False) for f in schema.names}
            for c in cams:
                imgs = fr[keys.image_key(c)]
                row.update(sinks[c].add_episode(imgs))
                stats[IMAGES_PREFIX + c] = feature_stats(imgs, True)
            stats = {f: stats[f] for f in features}
            ep_stats.append(stats)
            for f, st in stats.items():
                for s, v in st.items():
                    row[f'stats/{f}/{s}'] = np.asarray(v).tolist()
            row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0,
                        META_COLUMN: json.dumps(meta, sort_keys=True)})
            rows.append(row)
            total += n
        data.close()
        for s in sinks.values():
            s.close()
        for c in cams:
            features[IMAGES_PREFIX + c]['info'] = _video_info(sinks[c].path(0, 0), vcodec, crf)
        info = {'codebase_version': CODEBASE_VERSION, 'fps': fps, 'features': features,
                'total_episodes': len(eps), 'total_frames': total, 'total_tasks': len(tasks),
                'chunks_size': CHUNKS_SIZE, 'data_files_size_in_mb': data_files_size_in_mb,
                'video_files_size_in_mb': video_files_size_in_mb, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH if cams else None,
                'robot_type': (first.get('robot') or {}).get('name'),
                'splits': {'train': f'0:{len(eps)}'}}
        (tmp / 'meta').mkdir(exist_ok=True)
        (tmp / INFO_PATH).write_text(json.dumps(info, indent=4))
        (tmp / STATS_PATH).write_text(json.dumps(jsonable_stats(aggregate_stats(ep_stats)),
                                                 indent=4))
        _write_tasks(tmp / TASKS_PATH, tasks)
        ep_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), str(ep_path))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        data.close()
        for s in sinks.values():
            try:
                s.close()
            except Exception:  # noqa: BLE001 - already failing; the folder goes anyway
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {'out': str(out), 'episodes': len(eps), 'frames': total, 'fps': fps,
            'cameras': cams, 'vcodec': vcodec, 'tasks': tasks,
            'seconds': round(time.monotonic() - t0, 2)}

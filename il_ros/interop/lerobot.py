"""LeRobot v3 datasets out of and into the il_ros store (``il-ros export/import``).

The layout follows LeRobot's own writer as read in huggingface/lerobot 0.6.2 (commit
7427f318, ``src/lerobot/datasets/utils.py``, ``feature_utils.py``, ``dataset_metadata.py``,
``dataset_writer.py``, ``compute_stats.py`` and ``scripts/convert_dataset_v21_to_v30.py``),
codebase_version ``v3.0``::

    meta/info.json                       codebase_version, robot_type, fps, total_episodes,
                                         total_frames, total_tasks, chunks_size,
                                         data_files_size_in_mb, video_files_size_in_mb,
                                         data_path / video_path templates, features
                                         ({dtype, shape, names[, info]}), splits
    meta/stats.json                      per feature: min, max, mean, std, count, q01 .. q99
    meta/tasks.parquet                   task_index, with the task string as (pandas) index
    meta/episodes/chunk-000/file-000.parquet
                                         one row per episode: episode_index, tasks, length,
                                         data/chunk_index, data/file_index,
                                         dataset_from_index, dataset_to_index,
                                         videos/<key>/{chunk_index, file_index,
                                         from_timestamp, to_timestamp}, stats/<key>/<stat>,
                                         meta/episodes/{chunk_index, file_index}
    data/chunk-000/file-000.parquet      one row per frame, every non-video feature
    videos/observation.images.<camera>/chunk-000/file-000.mp4
                                         every episode's frames of that camera, one after
                                         the other; an episode is [from_timestamp,
                                         to_timestamp) of the file

A file rolls over to the next ``file-NNN`` (and ``chunk-NNN`` after ``chunks_size`` files)
at an episode boundary once it holds ``data_files_size_in_mb`` / ``video_files_size_in_mb``,
as LeRobot does. A video's size is counted in the bytes muxed so far; an encoder that holds
frames back (AV1, h264) is a few frames behind, so a file can end slightly over the limit.

Export (:func:`export_lerobot`) maps il_ros keys to LeRobot's conventions:
``joint_pos`` -> ``observation.state``, ``joint_vel`` -> ``observation.velocity``,
``action`` -> ``action``, ``image/<cam>`` -> ``observation.images.<cam>`` (a ``video``
feature), and adds LeRobot's ``timestamp`` (frame_index / fps, from the episode start),
``frame_index``, ``episode_index``, ``index`` and ``task_index``. Our own per-frame data
travels as extra features: ``il_ros.label`` (int64 codes of il_ros.keys.LABEL_NAMES; the
names are in the feature's ``info.label_names``), ``il_ros.success`` (int64, the episode's
success on every frame: 1, 0, or -1 where it was not recorded) and ``il_ros.time`` (the
original tick times, float64). Each episode's full il_ros metadata is kept as JSON in the
episodes table's ``il_ros.meta`` column, so an export imports back to the same episodes.

Decisions:

- **Video.** One MP4 stream per camera, encoded with PyAV: LeRobot's default codec
  ``libsvtav1`` (AV1) when this PyAV has it, else h264, hevc or mpeg4; ``yuv420p``, GOP 2
  and CRF 30, LeRobot's recording defaults (a keyframe every 2 frames keeps random access
  cheap); mpeg4 has no CRF and gets 2 bits per pixel. Frame k of a file has pts k at time
  base 1/fps, so frame times are exact. yuv420p needs even image sizes; an odd one is
  refused.
- **Stats** are computed as LeRobot computes them: per episode over the frames (images per
  channel in [0, 1], from at most 100 evenly spaced frames, downsampled by striding to about
  150 px), quantiles q01/q10/q50/q90/q99; the dataset stats aggregate the episodes the way
  LeRobot's ``aggregate_stats`` does (count-weighted mean and pooled variance; the lowest
  lower and highest upper quantiles).
- **fps** is LeRobot's integer frame rate: the episodes' ``rate_hz`` (or ``fps``), else the
  step of their ``time``; the ``time`` steps must match it.
- **Atomic.** The export is written into a temporary folder beside ``out_dir`` and renamed
  into place, so a failed export leaves nothing half-written.

Import (:func:`import_lerobot`) reads a local LeRobot v3 folder (nothing is downloaded)
through a feature map (``config/interop/lerobot_map.yaml``; :class:`LeRobotMap`) and
appends its episodes to an il_ros dataset. Images keep their native size (nothing is
resized or cropped); each episode records ``preprocess`` with that size, so a policy trained
on it fits live camera frames to it. Every problem (a missing feature, a wrong shape, NaN,
a broken or short video, timestamps that do not step at the dataset's fps) raises
:class:`LeRobotFormatError` naming the file and the field. Re-importing the same folder
skips the episodes already in the dataset (each has a ``source_id``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
import json
import os
from pathlib import Path
import shutil

import numpy as np

from il_ros import keys

CODEBASE_VERSION = 'v3.0'
INFO_PATH = 'meta/info.json'
STATS_PATH = 'meta/stats.json'
TASKS_PATH = 'meta/tasks.parquet'
EPISODES_DIR = 'meta/episodes'
CHUNK_FILE_PATTERN = 'chunk-{chunk_index:03d}/file-{file_index:03d}'
EPISODES_PATH = EPISODES_DIR + '/' + CHUNK_FILE_PATTERN + '.parquet'
DATA_PATH = 'data/' + CHUNK_FILE_PATTERN + '.parquet'
VIDEO_PATH = 'videos/{video_key}/' + CHUNK_FILE_PATTERN + '.mp4'
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)

STATE = 'observation.state'
VELOCITY = 'observation.velocity'
ACTION = 'action'
IMAGES_PREFIX = 'observation.images.'
LABEL = 'il_ros.label'
SUCCESS = 'il_ros.success'
TIME = 'il_ros.time'
META_COLUMN = 'il_ros.meta'
DEFAULT_FEATURES = ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index')

VCODECS = ('libsvtav1', 'h264', 'hevc', 'mpeg4')
"""Encoders in order of preference (LeRobot's default first)."""
GOP = 2
CRF = 30
PIX_FMT = 'yuv420p'
STATS_MAX_FRAMES = 100
STATS_MAX_SIDE = 150


class LeRobotFormatError(ValueError):
    """A LeRobot dataset (or an export's input) does not fit the format.

    The message names the file and the field.
    """


# ---- mapping -------------------------------------------------------------------------------
@dataclass
class LeRobotMap:
    """Which LeRobot feature plays which role on import (``config/interop/lerobot_map.yaml``)."""

    cameras: dict[str, str] = field(default_factory=dict)
    """il_ros camera name -> image/video feature; empty: every ``observation.images.<name>``
    as camera ``<name>``."""
    joint_state: str = STATE
    """Feature -> ``joint_pos``."""
    joint_velocity: str = ''
    """Feature -> ``joint_vel`` ('' for none)."""
    action: str = ACTION
    """Feature -> ``action``."""
    label: str = LABEL
    """Per-frame label codes; used when present, else every frame is demo."""
    success: str = SUCCESS
    """Per-frame success (1, 0, -1 unknown); used when present."""

    def __post_init__(self):
        if not isinstance(self.cameras, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and k and v
                for k, v in self.cameras.items()):
            raise ValueError('cameras: expected a mapping of camera name -> feature name')
        for name in ('joint_state', 'action'):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f'{name}: a feature name is required')
        for name in ('joint_velocity', 'label', 'success'):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f'{name}: expected a feature name (or \'\')')


def load_lerobot_map(path=None) -> LeRobotMap:
    """LeRobotMap from a YAML file (None: the defaults); ConfigError naming the file."""
    from il_ros.config import ConfigError, from_dict, load_yaml
    if path is None:
        return LeRobotMap()
    data = load_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping of role -> feature')
    return from_dict(LeRobotMap, data or {}, str(path))


# ---- shared helpers ------------------------------------------------------------------------
def _chunk_next(chunk: int, file: int) -> tuple[int, int]:
    """The (chunk, file) index after this one (a chunk holds CHUNKS_SIZE files)."""
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


def pick_vcodec(requested: str | None = None) -> str:
    """``requested`` if this PyAV can encode it, else the first of VCODECS it can."""
    import av
    names = [requested] if requested else list(VCODECS)
    for name in names:
        try:
            av.codec.Codec(name, 'w')
            return name
        except Exception:  # noqa: BLE001 - av raises UnknownCodecError or ValueError
            continue
    if requested:
        raise LeRobotFormatError(f'video codec {requested!r}: this PyAV ({av.__version__}) '
                                 f'cannot encode it; try one of {list(VCODECS)}')
    raise LeRobotFormatError(f'this PyAV ({av.__version__}) has none of the encoders '
                             f'{list(VCODECS)}')


def _feature_stats(x: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats of one feature: ``x`` is (T, ...) ; images (T, H, W, 3)."""
    if image:
        step = max(1, len(x) // STATS_MAX_FRAMES)
        x = x[::step][:STATS_MAX_FRAMES]
        s = max(1, int(np.ceil(max(x.shape[1:3]) / STATS_MAX_SIDE)))
        px = x[:, ::s, ::s].reshape(-1, 3).astype(np.float64) / 255.0
        out = {'min': px.min(0), 'max': px.max(0), 'mean': px.mean(0), 'std': px.std(0)}
        out.update({f'q{int(q * 100):02d}': np.quantile(px, q, axis=0) for q in QUANTILES})
        out = {k: v.reshape(3, 1, 1) for k, v in out.items()}
        out['count'] = np.array([len(x)])
        return out
    v = x.astype(np.float64).reshape(len(x), -1)
    out = {'min': v.min(0), 'max': v.max(0), 'mean': v.mean(0), 'std': v.std(0)}
    out.update({f'q{int(q * 100):02d}': np.quantile(v, q, axis=0) for q in QUANTILES})
    out['count'] = np.array([len(x)])
    return out


def _aggregate_stats(per_episode: list[dict]) -> dict:
    """Dataset stats from episode stats, as LeRobot's aggregate_stats combines them."""
    out = {}
    for key in per_episode[0]:
        ss = [e[key] for e in per_episode]
        counts = np.array([s['count'][0] for s in ss], dtype=np.float64)
        means = np.stack([s['mean'] for s in ss])
        var = np.stack([s['std'] ** 2 for s in ss])
        w = counts.reshape((-1,) + (1,) * (means.ndim - 1))
        mean = (means * w).sum(0) / counts.sum()
        std = np.sqrt(((var + (means - mean) ** 2) * w).sum(0) / counts.sum())
        agg = {'min': np.min([s['min'] for s in ss], 0), 'max': np.max([s['max'] for s in ss], 0),
               'mean': mean, 'std': std, 'count': np.array([int(counts.sum())])}
        for q in QUANTILES:
            k = f'q{int(q * 100):02d}'
            qs = np.stack([s[k] for s in ss])
            agg[k] = qs.min(0) if q <= 0.5 else qs.max(0)
        out[key] = agg
    return out


def _jsonable_stats(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


# ---- export --------------------------------------------------------------------------------
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
            self.chunk, self.file = _chunk_next(self.chunk, self.file)
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
            self.chunk, self.file = _chunk_next(self.chunk, self.file)
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


def export_lerobot(dataset_dir, out_dir, *, fps=None, episodes=None, task=None, vcodec=None,
                   crf: int = CRF, progress: bool = True,
                   data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
                   video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB) -> dict:
    """Write the il_ros dataset at ``dataset_dir`` as a LeRobot v3 dataset in ``out_dir``.

    ``episodes``: indices to export (default all), renumbered from 0 in that order.
    ``task``: the task string of every episode (default: each episode's meta ``task``, else
    the dataset folder's name). ``vcodec``: a PyAV encoder name (default: the best of
    VCODECS available). ``out_dir`` must not exist or be empty. Returns a summary dict
    (out, episodes, frames, fps, cameras, vcodec, tasks, seconds). Raises
    LeRobotFormatError (bad input; nothing is written) or StoreError (no dataset).
    """
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
            if TIME_KEY in fr and n > 1:
                step = np.diff(fr[TIME_KEY])
                off = np.flatnonzero(np.abs(step - 1.0 / fps) > 0.25 / fps)
                if off.size:
                    j = int(off[0])
                    raise LeRobotFormatError(
                        f'{ds.episode_file(i)}: time steps by {step[j]:.4f} s at frame {j + 1},'
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
            stats = {f: _feature_stats(values[f], False) for f in schema.names}
            for c in cams:
                imgs = fr[keys.image_key(c)]
                row.update(sinks[c].add_episode(imgs))
                stats[IMAGES_PREFIX + c] = _feature_stats(imgs, True)
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
        (tmp / STATS_PATH).write_text(json.dumps(_jsonable_stats(_aggregate_stats(ep_stats)),
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


# ---- import --------------------------------------------------------------------------------
def _read_json(path: Path, what: str):
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing ({what})')
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise LeRobotFormatError(f'{path}: not JSON: {e}') from None


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing')
    try:
        return pq.read_table(str(path))
    except (pa.ArrowException, OSError) as e:
        raise LeRobotFormatError(f'{path}: cannot read Parquet: {e}') from None


def _read_info(src: Path) -> dict:
    p = src / INFO_PATH
    if not src.is_dir():
        raise LeRobotFormatError(f'{src}: no such folder')
    info = _read_json(p, 'not a LeRobot dataset folder')
    if not isinstance(info, dict):
        raise LeRobotFormatError(f'{p}: expected a JSON object')
    version = str(info.get('codebase_version', ''))
    if not version.startswith('v3.'):
        hint = (' (convert it with lerobot\'s convert_dataset_v21_to_v30 first)'
                if version.startswith('v2') else '')
        raise LeRobotFormatError(f'{p}: codebase_version {version or None!r} is not v3.x'
                                 + hint)
    for k in ('fps', 'features', 'data_path'):
        if k not in info:
            raise LeRobotFormatError(f'{p}: no {k!r}')
    fps = info['fps']
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise LeRobotFormatError(f'{p}: fps {fps!r} is not a positive number')
    if not isinstance(info['features'], dict):
        raise LeRobotFormatError(f'{p}: features is not a mapping')
    return info


def _read_episodes(src: Path) -> list[dict]:
    files = sorted((src / EPISODES_DIR).glob('*/*.parquet'))
    if not files:
        raise LeRobotFormatError(f'{src / EPISODES_DIR}: no episode metadata '
                                 '(chunk-NNN/file-NNN.parquet)')
    rows = []
    for f in files:
        t = _read_parquet(f)
        cols = [c for c in t.column_names if not c.startswith('stats/')]
        for need in ('episode_index', 'length', 'data/chunk_index', 'data/file_index'):
            if need not in cols:
                raise LeRobotFormatError(f'{f}: no column {need!r}')
        for r in t.select(cols).to_pylist():
            r['_file'] = f
            rows.append(r)
    rows.sort(key=lambda r: r['episode_index'])
    return rows


def _read_tasks(src: Path) -> dict[int, str]:
    t = _read_parquet(src / TASKS_PATH)
    if 'task_index' not in t.column_names:
        raise LeRobotFormatError(f'{src / TASKS_PATH}: no column task_index')
    names = t.column('task').to_pylist() if 'task' in t.column_names else None
    if names is None:       # the pandas index kept under another name
        rest = [c for c in t.column_names if c != 'task_index']
        names = t.column(rest[0]).to_pylist() if rest else [''] * t.num_rows
    return dict(zip(t.column('task_index').to_pylist(), names))


def _feature(info: dict, name: str, role: str, src: Path) -> dict:
    ft = info['features'].get(name)
    if not isinstance(ft, dict) or 'dtype' not in ft or 'shape' not in ft:
        raise LeRobotFormatError(f'{src / INFO_PATH}: features has no {name!r} (the map\'s '
                                 f'{role}); features: {sorted(info["features"])}')
    return ft


def _image_hw(ft: dict, name: str, src: Path) -> tuple[int, int]:
    shape = list(ft['shape'])
    names = ft.get('names') or ['height', 'width', 'channels']
    if len(shape) != 3:
        raise LeRobotFormatError(f'{src / INFO_PATH}: {name}: shape {shape} is not an image '
                                 'shape (H, W, C)')
    dims = dict(zip(names, shape)) if len(names) == 3 else {}
    h, w, c = (dims.get('height', shape[0]), dims.get('width', shape[1]),
               dims.get('channels', shape[2]))
    if c != 3:
        raise LeRobotFormatError(f'{src / INFO_PATH}: {name}: {c} channels; only RGB (3) '
                                 'cameras import')
    return int(h), int(w)


def _array(table, name: str, shape: tuple, where: str, ep: int) -> np.ndarray:
    """Column ``name`` of ``table`` as a (T, *shape) array, checked for shape and NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if name not in table.column_names:
        raise LeRobotFormatError(f'{where}: no column {name!r}')
    col = table.column(name).combine_chunks()
    n = len(col)
    if col.null_count:
        raise LeRobotFormatError(f'{where}: {name}: null values in episode {ep}')
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) \
            or pa.types.is_large_list(col.type):
        lengths = np.asarray(pc.list_value_length(col))
        per = int(np.prod(shape))
        bad = np.flatnonzero(lengths != per)
        if bad.size:
            raise LeRobotFormatError(f'{where}: {name}: episode {ep} frame {int(bad[0])} has '
                                     f'{int(lengths[bad[0]])} values, info.json says shape '
                                     f'{list(shape)}')
        flat = col.flatten()
        if flat.null_count:
            raise LeRobotFormatError(f'{where}: {name}: null values in episode {ep}')
        arr = flat.to_numpy(zero_copy_only=False).reshape((n,) + tuple(shape))
    else:
        if tuple(shape) not in ((), (1,)):
            raise LeRobotFormatError(f'{where}: {name}: scalar column, info.json says shape '
                                     f'{list(shape)}')
        arr = col.to_numpy(zero_copy_only=False).reshape((n,) + tuple(shape))
    if arr.dtype.kind == 'f' and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise LeRobotFormatError(f'{where}: {name}: NaN/Inf in episode {ep} at frame '
                                 f'{int(bad[0])}')
    if arr.dtype.kind not in 'fiub':
        raise LeRobotFormatError(f'{where}: {name}: dtype {arr.dtype} is not numeric')
    return arr


class _VideoReader:
    """Frames of one camera's MP4 files in order; episodes are read one after the other."""

    def __init__(self, key: str, fps: float, hw: tuple[int, int]):
        self.key, self.fps, self.hw = key, fps, hw
        self.path = None
        self.frames = None        # generator of (time, rgb)
        self.pending = None
        self.container = None

    def _open(self, path: Path):
        import av
        self.close()
        if not path.is_file():
            raise LeRobotFormatError(f'{path}: missing (video of {self.key})')
        try:
            self.container = av.open(str(path))
        except av.FFmpegError as e:
            raise LeRobotFormatError(f'{path}: not a readable video ({self.key}): '
                                     f'{e}') from None
        if not self.container.streams.video:
            raise LeRobotFormatError(f'{path}: not a readable video ({self.key}): no video '
                                     'stream (a truncated or damaged file)')
        stream = self.container.streams.video[0]
        rate = stream.average_rate or stream.base_rate
        if rate and abs(float(rate) - self.fps) > 0.01 * self.fps:
            raise LeRobotFormatError(f'{path}: {self.key}: video runs at {float(rate):g} fps, '
                                     f'info.json fps is {self.fps:g}')
        self.path = path
        self.frames = self._decode(stream)
        self.pending = None

    def _decode(self, stream):
        import av
        try:
            for frame in self.container.decode(stream):
                if frame.time is None:
                    raise LeRobotFormatError(f'{self.path}: {self.key}: a frame has no '
                                             'timestamp')
                yield frame.time, frame.to_ndarray(format='rgb24')
        except av.FFmpegError as e:
            raise LeRobotFormatError(f'{self.path}: {self.key}: broken video: {e}') from None

    def episode(self, path: Path, start: float, times: np.ndarray, ep: int) -> np.ndarray:
        """The frames at ``start + times`` (seconds in the file), each within 0.4 / fps."""
        tol = 0.4 / self.fps
        if path != self.path or (self.pending is not None and self.pending[0] > start + tol):
            self._open(path)
        out = []
        for t in start + times:
            while True:
                if self.pending is None:
                    self.pending = next(self.frames, None)
                    if self.pending is None:
                        raise LeRobotFormatError(
                            f'{path}: {self.key}: video ends before episode {ep} does (no '
                            f'frame at {t:.3f} s; {len(out)} of {len(times)} frames found)')
                ft, img = self.pending
                if ft < t - tol:
                    self.pending = None
                    continue
                if ft > t + tol:
                    raise LeRobotFormatError(f'{path}: {self.key}: no frame at {t:.3f} s '
                                             f'(episode {ep} frame {len(out)}; next frame at '
                                             f'{ft:.3f} s)')
                if img.shape[:2] != self.hw:
                    raise LeRobotFormatError(f'{path}: {self.key}: frames are '
                                             f'{img.shape[0]}x{img.shape[1]}, info.json says '
                                             f'{self.hw[0]}x{self.hw[1]}')
                out.append(img)
                self.pending = None
                break
        return np.stack(out)

    def close(self):
        if self.container is not None:
            self.container.close()
            self.container = None


def _images_from_column(table, name: str, hw, where: str, ep: int) -> np.ndarray:
    """An ``image`` feature (PNG/JPEG bytes in the Parquet rows) decoded to (T, H, W, 3)."""
    import cv2
    if name not in table.column_names:
        raise LeRobotFormatError(f'{where}: no column {name!r}')
    out = []
    for j, cell in enumerate(table.column(name).to_pylist()):
        data = cell.get('bytes') if isinstance(cell, dict) else cell
        img = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
               if data else None)
        if img is None:
            raise LeRobotFormatError(f'{where}: {name}: episode {ep} frame {j} is not a '
                                     'decodable image')
        if img.shape[:2] != tuple(hw):
            raise LeRobotFormatError(f'{where}: {name}: episode {ep} frame {j} is '
                                     f'{img.shape[0]}x{img.shape[1]}, info.json says '
                                     f'{hw[0]}x{hw[1]}')
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return np.stack(out)


def import_lerobot(src_dir, out_dataset, *, mapping=None, progress: bool = True) -> dict:
    """Append the episodes of the local LeRobot v3 dataset ``src_dir`` to ``out_dataset``.

    ``mapping``: a LeRobotMap, a path to its YAML, or None (the defaults). Episodes already
    imported into ``out_dataset`` (same source_id) are skipped. Returns a summary dict (out,
    episodes, skipped, frames, fps, cameras, warnings, seconds). Raises LeRobotFormatError
    naming the file and field, ConfigError for a bad map, StoreError for a bad dataset.
    """
    import hashlib
    import time

    import pyarrow as pa
    from tqdm import tqdm

    from il_ros.data.store import DatasetWriter, LABEL_KEY, TIME_KEY
    t0 = time.monotonic()
    m = mapping if isinstance(mapping, LeRobotMap) else load_lerobot_map(mapping)
    src = Path(src_dir)
    info = _read_info(src)
    fps = float(info['fps'])
    feats = info['features']
    cams = dict(m.cameras) or {k[len(IMAGES_PREFIX):]: k for k, f in feats.items()
                               if k.startswith(IMAGES_PREFIX) and isinstance(f, dict)
                               and f.get('dtype') in ('video', 'image')}
    for cam, name in cams.items():
        ft = _feature(info, name, f'camera {cam}', src)
        if ft['dtype'] not in ('video', 'image'):
            raise LeRobotFormatError(f'{src / INFO_PATH}: {name} (camera {cam}) has dtype '
                                     f'{ft["dtype"]!r}, not video or image')
        if ft['dtype'] == 'video' and not info.get('video_path'):
            raise LeRobotFormatError(f'{src / INFO_PATH}: {name} is a video feature but '
                                     'video_path is null')
    hws = {cam: _image_hw(feats[name], name, src) for cam, name in cams.items()}
    roles = {keys.OBS_JOINT_POS: (m.joint_state, 'joint_state'),
             keys.ACTION: (m.action, 'action')}
    if m.joint_velocity:
        roles[keys.OBS_JOINT_VEL] = (m.joint_velocity, 'joint_velocity')
    shapes = {}
    for key, (name, role) in roles.items():
        ft = _feature(info, name, role, src)
        shape = tuple(int(d) for d in ft['shape'])
        if len(shape) != 1:
            raise LeRobotFormatError(f'{src / INFO_PATH}: {name} ({role}) has shape '
                                     f'{list(shape)}; a vector (D,) is needed')
        shapes[key] = shape
    has_label = m.label in feats
    has_success = m.success in feats
    has_time = TIME in feats
    _read_tasks(src)            # present and readable
    episodes = _read_episodes(src)
    info_text = (src / INFO_PATH).read_bytes()
    warnings = []
    sizes = set(hws.values())
    if len(sizes) > 1:
        warnings.append(f'cameras have different sizes {sorted(sizes)}: kept native; training '
                        'needs one size (no preprocess recorded)')
    readers = {cam: _VideoReader(name, fps, hws[cam])
               for cam, name in cams.items() if feats[name]['dtype'] == 'video'}
    data_cache: dict = {}
    imported = skipped = frames_total = 0
    writer = DatasetWriter(out_dataset, create=True)
    try:
        for ep in tqdm(episodes, desc='import lerobot', unit='episode', disable=not progress):
            e = int(ep['episode_index'])
            row = {k: v for k, v in ep.items() if k != '_file'}
            sid = 'lerobot:' + hashlib.sha256(
                info_text + json.dumps(row, sort_keys=True, default=str).encode()
            ).hexdigest()[:32]
            if writer.has_source(sid):
                skipped += 1
                continue
            dpath = src / info['data_path'].format(chunk_index=int(ep['data/chunk_index']),
                                                   file_index=int(ep['data/file_index']))
            if dpath not in data_cache:
                data_cache.clear()
                table = _read_parquet(dpath)
                for need in ('episode_index', 'frame_index', 'timestamp'):
                    if need not in table.column_names:
                        raise LeRobotFormatError(f'{dpath}: no column {need!r}')
                epi = table.column('episode_index').to_numpy()
                data_cache[dpath] = (table, epi)
            table, epi = data_cache[dpath]
            rows = table.take(pa.array(np.flatnonzero(epi == e)))
            n = rows.num_rows
            where = str(dpath)
            if n == 0:
                raise LeRobotFormatError(f'{where}: no rows of episode {e}')
            if n != int(ep['length']):
                raise LeRobotFormatError(f'{where}: episode {e} has {n} rows, '
                                         f'{ep["_file"]} says length {ep["length"]}')
            fi = rows.column('frame_index').to_numpy()
            order = np.argsort(fi, kind='stable')
            rows = rows.take(pa.array(order))
            if not np.array_equal(fi[order], np.arange(n)):
                raise LeRobotFormatError(f'{where}: frame_index of episode {e} is not 0..{n - 1}')
            ts = _array(rows, 'timestamp', (), where, e).astype(np.float64)
            if n > 1:
                step = np.diff(ts)
                off = np.flatnonzero(np.abs(step - 1.0 / fps) > 0.25 / fps)
                if off.size:
                    j = int(off[0])
                    raise LeRobotFormatError(
                        f'{where}: timestamp of episode {e} steps by {step[j]:.4f} s at frame '
                        f'{j + 1}, not 1/fps = {1.0 / fps:.4f} s (info.json fps {fps:g})')
            frames = {}
            for key, (name, _role) in roles.items():
                frames[key] = _array(rows, name, shapes[key], where, e)
            for cam, name in cams.items():
                if cam in readers:
                    pre = f'videos/{name}/'
                    for need in ('chunk_index', 'file_index', 'from_timestamp'):
                        if pre + need not in ep:
                            raise LeRobotFormatError(f'{ep["_file"]}: no column '
                                                     f'{pre + need!r}')
                    vpath = src / info['video_path'].format(
                        video_key=name, chunk_index=int(ep[pre + 'chunk_index']),
                        file_index=int(ep[pre + 'file_index']))
                    frames[keys.image_key(cam)] = readers[cam].episode(
                        vpath, float(ep[pre + 'from_timestamp']), ts, e)
                else:
                    frames[keys.image_key(cam)] = _images_from_column(rows, name, hws[cam],
                                                                      where, e)
            if has_label:
                lab = _array(rows, m.label, (), where, e)
                if lab.min() < 0 or lab.max() >= len(keys.LABEL_NAMES):
                    raise LeRobotFormatError(f'{where}: {m.label}: episode {e} has codes '
                                             f'outside 0..{len(keys.LABEL_NAMES) - 1} '
                                             f'({list(keys.LABEL_NAMES)})')
                frames[LABEL_KEY] = lab.astype(np.uint8)
            else:
                frames[LABEL_KEY] = np.zeros(n, np.uint8)
            frames[TIME_KEY] = (_array(rows, TIME, (), where, e).astype(np.float64)
                                if has_time else ts)
            success = None
            if has_success:
                s = np.unique(_array(rows, m.success, (), where, e))
                if len(s) != 1:
                    raise LeRobotFormatError(f'{where}: {m.success}: episode {e} has several '
                                             f'values {s.tolist()}; it is per episode')
                success = None if s[0] < 0 else bool(s[0])
            meta = _import_meta(ep, info, hws, fps, roles, m, src, success)
            meta['source_id'] = sid
            writer.append_episode(frames, meta)
            imported += 1
            frames_total += n
    finally:
        for r in readers.values():
            r.close()
        writer.close()
    return {'out': str(out_dataset), 'episodes': imported, 'skipped': skipped,
            'frames': frames_total, 'fps': fps, 'cameras': sorted(cams),
            'warnings': warnings, 'seconds': round(time.monotonic() - t0, 2)}


def _import_meta(ep: dict, info: dict, hws: dict, fps: float, roles: dict,
                 m: LeRobotMap, src: Path, success) -> dict:
    """An imported episode's meta: our own (il_ros.meta) when it was exported by il_ros."""
    text = ep.get(META_COLUMN)
    if isinstance(text, str):
        try:
            meta = json.loads(text)
        except ValueError:
            raise LeRobotFormatError(f'{ep["_file"]}: {META_COLUMN} of episode '
                                     f'{ep["episode_index"]} is not JSON') from None
        meta.pop('source_id', None)
    else:
        feats = info['features']
        task_names = ep.get('tasks') or []
        meta = {'task': task_names[0] if task_names else None, 'rate_hz': fps}
        state_names = feats[m.joint_state].get('names')
        if isinstance(state_names, dict):      # older datasets: {'motors': [...]}
            state_names = next(iter(state_names.values()), None)
        if isinstance(state_names, list) and all(isinstance(x, str) for x in state_names):
            meta['joint_names'] = state_names
        sizes = set(hws.values())
        if len(sizes) == 1:
            h, w = sizes.pop()
            meta['preprocess'] = {'size': [h, w], 'crop': 'center', 'interpolation': 'area'}
    meta['success'] = success if success is not None else meta.get('success')
    meta['lerobot'] = {'source': str(src), 'episode_index': int(ep['episode_index']),
                       'codebase_version': info.get('codebase_version'),
                       'robot_type': info.get('robot_type'), 'tasks': list(ep.get('tasks') or []),
                       'features': {key: name for key, (name, _r) in roles.items()}}
    return meta

"""LeRobot v3 format names, the import feature map, LeRobot's stats rules, metadata readers.

Shared by il_ros.interop.lerobot_export and lerobot_import; the layout and the decisions
are described in il_ros.interop.lerobot, the public entry point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import json
from pathlib import Path

import numpy as np


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
def chunk_next(chunk: int, file: int) -> tuple[int, int]:
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


def first_off_grid(times: np.ndarray, fps: float) -> tuple[int, float] | None:
    """(frame, step in s) of the first step more than a quarter period off 1/fps, or None."""
    step = np.diff(np.asarray(times, np.float64))
    off = np.flatnonzero(np.abs(step - 1.0 / fps) > 0.25 / fps)
    return (int(off[0]) + 1, float(step[off[0]])) if off.size else None


def feature_stats(x: np.ndarray, image: bool) -> dict[str, np.ndarray]:
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


def aggregate_stats(per_episode: list[dict]) -> dict:
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


def jsonable_stats(stats: dict) -> dict:
    """Stats as JSON-able nested lists (meta/stats.json)."""
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}



# ---- reading a LeRobot folder's metadata ---------------------------------------------------
def read_json(path: Path, what: str):
    """Parse a JSON file; LeRobotFormatError naming it (``what``: why it is needed)."""
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing ({what})')
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise LeRobotFormatError(f'{path}: not JSON: {e}') from None


def read_parquet(path: Path):
    """Read a Parquet file as a pyarrow Table; LeRobotFormatError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing')
    try:
        return pq.read_table(str(path))
    except (pa.ArrowException, OSError) as e:
        raise LeRobotFormatError(f'{path}: cannot read Parquet: {e}') from None


def read_info(src: Path) -> dict:
    """meta/info.json of the dataset folder ``src``, checked to be v3.x with fps and features."""
    p = src / INFO_PATH
    if not src.is_dir():
        raise LeRobotFormatError(f'{src}: no such folder')
    info = read_json(p, 'not a LeRobot dataset folder')
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


def read_episodes(src: Path) -> list[dict]:
    """The episodes table (no stats/ columns) as dicts by episode_index; '_file' is its file."""
    files = sorted((src / EPISODES_DIR).glob('*/*.parquet'))
    if not files:
        raise LeRobotFormatError(f'{src / EPISODES_DIR}: no episode metadata '
                                 '(chunk-NNN/file-NNN.parquet)')
    rows = []
    for f in files:
        t = read_parquet(f)
        cols = [c for c in t.column_names if not c.startswith('stats/')]
        for need in ('episode_index', 'length', 'data/chunk_index', 'data/file_index'):
            if need not in cols:
                raise LeRobotFormatError(f'{f}: no column {need!r}')
        for r in t.select(cols).to_pylist():
            r['_file'] = f
            rows.append(r)
    rows.sort(key=lambda r: r['episode_index'])
    return rows


def read_tasks(src: Path) -> dict[int, str]:
    """meta/tasks.parquet as {task_index: task}."""
    t = read_parquet(src / TASKS_PATH)
    if 'task_index' not in t.column_names:
        raise LeRobotFormatError(f'{src / TASKS_PATH}: no column task_index')
    names = t.column('task').to_pylist() if 'task' in t.column_names else None
    if names is None:       # the pandas index kept under another name
        rest = [c for c in t.column_names if c != 'task_index']
        names = t.column(rest[0]).to_pylist() if rest else [''] * t.num_rows
    return dict(zip(t.column('task_index').to_pylist(), names))


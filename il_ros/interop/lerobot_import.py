"""The LeRobot v3 reader behind il_ros.interop.lerobot.import_lerobot.

Episodes are read in episode_index order: each one's rows from its data file (one file is
held at a time), each camera's frames from its MP4 by timestamp (a camera's decoder runs on
through the file from one episode to the next, and reopens it only when an episode starts
earlier than the last one ended), then checked and appended to the dataset. Decisions and
the checks are in il_ros.interop.lerobot's docstring and docs/interop.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from il_ros import keys
from il_ros.interop.lerobot_format import (
    first_off_grid, IMAGES_PREFIX, INFO_PATH, LeRobotFormatError, LeRobotMap,
    load_lerobot_map, META_COLUMN, read_episodes, read_info, read_parquet, read_tasks, TIME)


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


def import_dataset(src_dir, out_dataset, *, mapping=None, progress: bool = True) -> dict:
    """il_ros.interop.lerobot.import_lerobot (see there)."""
    import hashlib
    import time

    import pyarrow as pa
    from tqdm import tqdm

    from il_ros.data.store import DatasetWriter, LABEL_KEY, TIME_KEY
    t0 = time.monotonic()
    m = mapping if isinstance(mapping, LeRobotMap) else load_lerobot_map(mapping)
    src = Path(src_dir)
    info = read_info(src)
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
    read_tasks(src)            # present and readable
    episodes = read_episodes(src)
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
                table = read_parquet(dpath)
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
            off = first_off_grid(ts, fps) if n > 1 else None
            if off:
                raise LeRobotFormatError(
                    f'{where}: timestamp of episode {e} steps by {off[1]:.4f} s at frame '
                    f'{off[0]}, not 1/fps = {1.0 / fps:.4f} s (info.json fps {fps:g})')
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
    meta.setdefault('rate_hz', fps)
    meta['lerobot'] = {'source': str(src), 'episode_index': int(ep['episode_index']),
                       'codebase_version': info.get('codebase_version'),
                       'robot_type': info.get('robot_type'), 'tasks': list(ep.get('tasks') or []),
                       'features': {key: name for key, (name, _r) in roles.items()}}
    return meta

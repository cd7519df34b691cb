"""``il-ros view``: one episode, from a dataset or a recorded bag, logged to Rerun.

What is logged (rerun-sdk; every value on the ``time`` timeline, seconds from the episode's
first sample, and, for a dataset, also on the ``frame`` sequence timeline):

A dataset episode (``il-ros view DATASET --episode N``):

    camera/<name>             rr.Image per frame (image/<name>)
    joint_pos/<joint>         rr.Scalars, one series per joint (the episode's joint_names)
    joint_vel/<joint>         the same, when the dataset has joint_vel
    action/<name>             rr.Scalars, one series per commanded action (action_names)
    control_source/code       rr.Scalars, the label code per frame (0 demo, 1 policy,
                              2 intervention, 3 pre_intervention, 4 hold)
    control_source/events     rr.TextLog where the label changes (interventions at level
                              WARN, so they stand out in the log view and on the timeline)
    episode                   rr.TextDocument (static): task, success, frames, robot, source
    episode/success           rr.TextLog at the last frame: 'success' or 'failure'

A bag folder (``il-ros view data/bags/lift/episode_0007``): every topic of a type below, at
the entity named after the topic (``/camera/front/image_raw`` -> ``camera/front/image_raw``):
Image/CompressedImage as images (at their recorded size), JointState as one series per joint
under ``<topic>/position`` and ``<topic>/velocity``, Float64MultiArray as one series per
element, Bool as a 0/1 series, and String (the control source) as a label code series plus a
TextLog at each change. Each topic is timed by its header stamps, or by the bag's receive
time where it has no header or its stamps are implausible (the rule of ``il-ros convert``,
il_ros.data.resample.choose_timing). Other types are skipped and named in the result. The
recorder's episode JSON beside the bag, if any, gives the ``episode`` document (status,
success).

Where it goes: with a viewer (a display, and the ``rerun`` executable installed with
rerun-sdk) the viewer is spawned and the episode streamed to it; headless, or with
``--save``/``--out``, an ``.rrd`` file is written (default beside the input:
``<dataset>_episode_<N>.rrd``, ``<bag>.rrd``), atomically (temp file, renamed once
complete), and opens later with ``rerun FILE.rrd``.
"""
from __future__ import annotations

import os
from pathlib import Path
import shutil
import sys

import numpy as np

from il_ros import keys

APP_ID = 'il_ros'
TIMELINE = 'time'
LABEL_EVENT_LEVELS = {keys.SOURCE_INTERVENTION: 'WARN', keys.SOURCE_HOLD: 'DEBUG'}


class ViewError(ValueError):
    """The input cannot be viewed; the message names the path and what is wrong."""


VIEWER_PORT = 9876
"""The port a spawned viewer listens on (Rerun's default)."""


def viewer_available() -> bool:
    """Whether a Rerun viewer could open here: a display and the ``rerun`` executable."""
    if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY')
                                                 or os.environ.get('WAYLAND_DISPLAY')):
        return False
    return viewer_executable() is not None


def viewer_executable() -> str | None:
    """Path of the ``rerun`` viewer executable (on PATH or beside this Python), or None."""
    found = shutil.which('rerun')
    if found:
        return found
    local = Path(sys.executable).parent / 'rerun'
    return str(local) if local.is_file() else None


def _entity(*parts) -> str:
    import rerun as rr
    return '/'.join(rr.escape_entity_path_part(str(p)) for p in parts)


def _names(meta_names, width: int, prefix: str) -> list[str]:
    if isinstance(meta_names, list) and len(meta_names) == width:
        return [str(n) for n in meta_names]
    return [f'{prefix}{i}' for i in range(width)]


def _send_series(rec, base: str, names: list[str], times: np.ndarray, values: np.ndarray,
                 frames: np.ndarray | None = None) -> list[str]:
    """One rr.Scalars column per name under ``base``; returns the entity paths."""
    import rerun as rr
    values = np.asarray(values, np.float64).reshape(len(times), -1)
    indexes = [rr.TimeColumn(TIMELINE, duration=times)]
    if frames is not None:
        indexes.append(rr.TimeColumn('frame', sequence=frames))
    paths = []
    for j, name in enumerate(names):
        path = f'{base}/{_entity(name)}'
        rec.log(path, rr.SeriesLines(names=name), static=True)
        rec.send_columns(path, indexes=indexes, columns=rr.Scalars.columns(scalars=values[:, j]))
        paths.append(path)
    return paths


def _send_labels(rec, base: str, labels: list[str], times: np.ndarray,
                 frames: np.ndarray | None = None) -> list[str]:
    """The label code per sample and a TextLog at each change of label."""
    import rerun as rr
    code = np.array([keys.LABEL_NAMES.index(x) if x in keys.LABEL_NAMES else -1
                     for x in labels], np.float64)
    legend = ', '.join(f'{i} {n}' for i, n in enumerate(keys.LABEL_NAMES))
    rec.log(f'{base}/code', rr.SeriesLines(names=f'label ({legend})'), static=True)
    indexes = [rr.TimeColumn(TIMELINE, duration=times)]
    if frames is not None:
        indexes.append(rr.TimeColumn('frame', sequence=frames))
    rec.send_columns(f'{base}/code', indexes=indexes, columns=rr.Scalars.columns(scalars=code))
    change = [i for i in range(len(labels)) if i == 0 or labels[i] != labels[i - 1]]
    if change:
        ends = change[1:] + [len(labels)]
        text = [f'{labels[i]} (frames {i}-{e - 1}, {times[e - 1] - times[i]:.2f} s)'
                for i, e in zip(change, ends)]
        ev_index = [rr.TimeColumn(TIMELINE, duration=times[change])]
        if frames is not None:
            ev_index.append(rr.TimeColumn('frame', sequence=frames[change]))
        rec.send_columns(f'{base}/events', indexes=ev_index, columns=rr.TextLog.columns(
            text=text, level=[LABEL_EVENT_LEVELS.get(labels[i], 'INFO') for i in change]))
    return [f'{base}/code', f'{base}/events']


def _episode_doc(rec, info: dict) -> None:
    import rerun as rr
    lines = ['# Episode', ''] + [f'- **{k}**: {v}' for k, v in info.items()]
    rec.log('episode', rr.TextDocument('\n'.join(lines), media_type=rr.MediaType.MARKDOWN),
            static=True)


def _log_success(rec, success, t_last: float, frame_last: int | None = None) -> None:
    import rerun as rr
    if success is None:
        return
    rec.set_time(TIMELINE, duration=t_last)
    if frame_last is not None:
        rec.set_time('frame', sequence=frame_last)
    rec.log('episode/success', rr.TextLog('success' if success else 'failure',
                                          level='INFO' if success else 'ERROR'))


def log_dataset_episode(rec, dataset, episode: int, progress: bool = True) -> dict:
    """Log episode ``episode`` of the dataset folder ``dataset`` to ``rec``."""
    import rerun as rr
    from tqdm import tqdm

    from il_ros.data.store import Dataset, decode_labels, is_image_key, LABEL_KEY, StoreError
    from il_ros.data.store import TIME_KEY
    try:
        ds = Dataset(dataset)
    except StoreError as e:
        raise ViewError(str(e)) from None
    try:
        if ds.num_episodes == 0:
            raise ViewError(f'{ds.path}: the dataset has no episodes')
        if not 0 <= episode < ds.num_episodes:
            raise ViewError(f'{ds.path}: episode {episode} out of range: the dataset has '
                            f'{ds.num_episodes} episode(s) (0..{ds.num_episodes - 1})')
        meta = ds.meta(episode)
        n = int(ds.episode_lengths[episode])
        try:
            low = ds.episode(episode, [k for k in ds.keys if not is_image_key(k)])
        except StoreError as e:
            raise ViewError(str(e)) from None
        if TIME_KEY in low:
            times = np.asarray(low[TIME_KEY], np.float64)
            times = times - times[0]
        else:
            rate = float(meta.get('rate_hz') or 20.0)
            times = np.arange(n) / rate
        frames = np.arange(n)
        entities = []
        cams = [k for k in ds.keys if is_image_key(k)]
        for i in tqdm(range(n), desc='view', unit='frame', disable=not progress):
            rec.set_time(TIMELINE, duration=float(times[i]))
            rec.set_time('frame', sequence=i)
            for k in cams:
                rec.log(f'camera/{_entity(k[len(keys.OBS_IMAGE_PREFIX):])}',
                        rr.Image(ds.read(k, episode, i, i + 1)[0]))
        entities += [f'camera/{_entity(k[len(keys.OBS_IMAGE_PREFIX):])}' for k in cams]
        rec.reset_time()
        joint_names = meta.get('joint_names')
        for key, names_meta, prefix in ((keys.OBS_JOINT_POS, joint_names, 'j'),
                                        (keys.OBS_JOINT_VEL, joint_names, 'j'),
                                        (keys.ACTION, meta.get('action_names'), 'a')):
            if key in low:
                arr = np.asarray(low[key]).reshape(n, -1)
                entities += _send_series(rec, key, _names(names_meta, arr.shape[1], prefix),
                                         times, arr, frames)
        if LABEL_KEY in low:
            entities += _send_labels(rec, 'control_source', decode_labels(low[LABEL_KEY]),
                                     times, frames)
        success = meta.get('success')
        robot = meta.get('robot')
        _episode_doc(rec, {'dataset': str(ds.path), 'episode': episode, 'frames': n,
                           'task': meta.get('task'), 'success': success,
                           'robot': robot.get('name') if isinstance(robot, dict) else robot,
                           'source': meta.get('source_bag'),
                           'status': meta.get('episode_status')})
        _log_success(rec, success, float(times[-1]), n - 1)
        entities.append('episode')
    finally:
        ds.close()
    return {'kind': 'dataset', 'frames': n, 'entities': entities, 'success': success}


_SUPPORTED = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
              'sensor_msgs/msg/JointState', 'std_msgs/msg/Float64MultiArray',
              'std_msgs/msg/Bool', 'std_msgs/msg/String')


def log_bag(rec, bag, progress: bool = True) -> dict:
    """Log every supported topic of the bag folder ``bag`` to ``rec`` (see the module doc)."""
    import rerun as rr
    from tqdm import tqdm

    from il_ros.data.bag_reader import BagError, BagFile, image_header
    from il_ros.data.episodes import read_episode_meta
    from il_ros.data.resample import choose_timing
    from il_ros.data.topic_map import ConvertConfig
    from il_ros.images import decode_message, ImageError
    bag = Path(bag)
    if not (bag / 'metadata.yaml').is_file():
        raise ViewError(f'{bag}: not a rosbag2 folder (no metadata.yaml)')
    cfg = ConvertConfig()
    try:
        bf = BagFile(bag, cfg)
    except (ValueError, OSError) as e:
        raise ViewError(f'{bag}: {e}') from None
    entities: list[str] = []
    skipped: dict[str, str] = {}
    try:
        with bf:
            conns = [c for c in bf.reader.connections if c.msgtype in _SUPPORTED]
            skipped = {c.topic: c.msgtype for c in bf.reader.connections
                       if c.msgtype not in _SUPPORTED}
            if not conns:
                raise ViewError(f'{bag}: no topic of a type il-ros view shows '
                                f'({", ".join(_SUPPORTED)}); the bag has {skipped}')
            recv = {c.topic: [] for c in conns}
            stamps = {c.topic: [] for c in conns}
            items = {c.topic: [] for c in conns}
            images = {c.topic for c in conns if c.msgtype in _SUPPORTED[:2]}
            for conn, t_ns, raw in bf.reader.messages(connections=conns):
                topic = conn.topic
                recv[topic].append(t_ns * 1e-9)
                where = f'{bag}: {topic} at t={t_ns * 1e-9:.3f}s'
                try:
                    if topic in images:
                        stamp, _ = image_header(raw, conn.msgtype.endswith('Compressed'
                                                                           'Image'))
                        stamps[topic].append(stamp)
                        continue
                    msg = bf._deserialize(raw, conn.msgtype)
                except (ValueError, KeyError, IndexError) as e:
                    raise ViewError(f'{where}: cannot read the message: {e}') from None
                header = getattr(msg, 'header', None)
                stamps[topic].append(header.stamp.sec + header.stamp.nanosec * 1e-9
                                     if header is not None else None)
                if conn.msgtype == 'sensor_msgs/msg/JointState':
                    items[topic].append((list(msg.name), np.asarray(msg.position, float),
                                         np.asarray(msg.velocity, float)))
                elif conn.msgtype == 'std_msgs/msg/Float64MultiArray':
                    items[topic].append(np.asarray(msg.data, float))
                else:
                    items[topic].append(msg.data)
            times = {}
            for c in conns:
                st = stamps[c.topic]
                timing = choose_timing(np.asarray(st, float) if st and st[0] is not None
                                       else None, np.asarray(recv[c.topic]),
                                       cfg.stamp_tolerance_s)
                times[c.topic] = timing.times
            t0 = min(float(t[0]) for t in times.values() if len(t))
            rel = {k: np.asarray(v, np.float64) - t0 for k, v in times.items()}
            total = sum(len(v) for v in recv.values())
            bar = tqdm(total=total, desc='view', unit='msg', disable=not progress)
            for c in conns:
                topic, base = c.topic, _entity(*c.topic.strip('/').split('/'))
                t = rel[topic]
                if topic in images:
                    for i, (_, _, raw) in enumerate(bf.reader.messages(connections=[c])):
                        where = f'{bag}: {topic} (message {i})'
                        try:
                            img = decode_message(bf._deserialize(raw, c.msgtype))
                        except (ImageError, ValueError) as e:
                            raise ViewError(f'{where}: {e}') from None
                        rec.set_time(TIMELINE, duration=float(t[i]))
                        rec.log(base, rr.Image(img))
                        bar.update()
                    rec.reset_time()
                    entities.append(base)
                    continue
                its = items[topic]
                if c.msgtype == 'sensor_msgs/msg/JointState':
                    names = its[0][0]
                    for part, col in (('position', 1), ('velocity', 2)):
                        if any(len(x[col]) != len(names) for x in its):
                            continue
                        vals = np.stack([[dict(zip(x[0], x[col]))[n] for n in names]
                                         for x in its])
                        entities += _send_series(rec, f'{base}/{part}', names, t, vals)
                elif c.msgtype == 'std_msgs/msg/Float64MultiArray':
                    width = max(len(x) for x in its)
                    vals = np.full((len(its), width), np.nan)
                    for i, x in enumerate(its):
                        vals[i, :len(x)] = x
                    entities += _send_series(rec, base, [f'{i}' for i in range(width)], t,
                                             vals)
                elif c.msgtype == 'std_msgs/msg/Bool':
                    entities += _send_series(rec, base, ['value'], t,
                                             np.asarray(its, np.float64))
                else:
                    entities += _send_labels(rec, base, [str(x) for x in its], t)
                bar.update(len(its))
            bar.close()
    except BagError as e:
        raise ViewError(str(e)) from None
    meta = read_episode_meta(bag) or {}
    success = meta.get('success')
    info = {'bag': str(bag), 'messages': sum(len(v) for v in recv.values()),
            'status': meta.get('status'), 'task': meta.get('task'), 'success': success}
    if skipped:
        info['not shown'] = ', '.join(f'{t} ({m})' for t, m in sorted(skipped.items()))
    _episode_doc(rec, info)
    last = max(float(t[-1]) for t in rel.values() if len(t))
    _log_success(rec, success, last)
    entities.append('episode')
    return {'kind': 'bag', 'frames': {t: len(v) for t, v in recv.items()},
            'entities': entities, 'success': success, 'skipped': skipped}


def default_out(path: Path, episode: int | None) -> Path:
    """Where a headless view saves: beside the input."""
    path = Path(path).resolve()
    if episode is None:
        return path.with_name(path.name + '.rrd')
    return path.with_name(f'{path.name}_episode_{episode}.rrd')


def view(path, *, episode: int = 0, out=None, mode: str = 'auto',
         progress: bool = True, port: int = VIEWER_PORT) -> dict:
    """Log one episode of a dataset folder or a bag folder to Rerun.

    ``mode``: 'spawn' (open the viewer), 'save' (write an .rrd), or 'auto' (spawn when
    :func:`viewer_available`, else save; ``out`` given means save). Returns the log result
    (see log_dataset_episode / log_bag) plus ``out`` (the .rrd written, or None) and
    ``spawned``. ``port``: the viewer's port when spawning (a viewer already listening
    there gets the episode). Raises ViewError naming the path on bad input.
    """
    import rerun as rr

    from il_ros.data.store import MANIFEST
    from il_ros.fsio import fsync_dir
    path = Path(path)
    if mode not in ('auto', 'save', 'spawn'):
        raise ViewError(f'mode must be auto, save or spawn, got {mode!r}')
    if not path.exists():
        raise ViewError(f'{path}: does not exist (give a dataset folder or an episode bag '
                        'folder)')
    is_dataset = (path / MANIFEST).is_file()
    if not is_dataset and not (path / 'metadata.yaml').is_file():
        raise ViewError(f'{path}: neither a dataset (no {MANIFEST}) nor a rosbag2 bag folder '
                        '(no metadata.yaml)')
    if not is_dataset and episode:
        raise ViewError(f'{path}: a bag is one episode; --episode is for datasets')
    spawn = mode == 'spawn' or (mode == 'auto' and out is None and viewer_available())
    if spawn and viewer_executable() is None:
        raise ViewError('no rerun viewer executable found (it comes with rerun-sdk); '
                        'use --save to write an .rrd file')
    target = None
    name = f'{path.name} episode {episode}' if is_dataset else path.name
    rec = rr.RecordingStream(APP_ID, send_properties=True)
    rec.send_recording_name(name)
    if spawn:
        rr.spawn(port=port, executable_path=viewer_executable(), recording=rec)
    else:
        target = Path(out) if out is not None else default_out(path, episode if is_dataset
                                                               else None)
        if target.is_dir():
            raise ViewError(f'{target}: is a folder; give the .rrd file to write')
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f'.{target.name}.tmp')
        rec.save(tmp)
    try:
        if is_dataset:
            result = log_dataset_episode(rec, path, int(episode), progress)
        else:
            result = log_bag(rec, path, progress)
        rec.flush()
    except BaseException:
        rec.disconnect()
        if target is not None:
            tmp.unlink(missing_ok=True)
        raise
    rec.disconnect()
    if target is not None:
        with open(tmp, 'rb+') as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    result.update(out=str(target) if target else None, spawned=spawn)
    return result


def format_result(result: dict) -> str:
    """One or two lines for the command line."""
    frames = result['frames']
    what = (f'{frames} frames' if isinstance(frames, int)
            else f'{sum(frames.values())} messages on {len(frames)} topics')
    head = f'logged {what}, {len(result["entities"])} entities, success={result["success"]}'
    if result.get('skipped'):
        head += f'; not shown: {", ".join(sorted(result["skipped"]))}'
    if result['out']:
        return f'{head}\nwrote {result["out"]} (open it with: rerun {result["out"]})'
    return f'{head}\nsent to the Rerun viewer'



def _cmd_view(args) -> int:
    """``il-ros view``: exit 0 logged; 2 bad input (one line on stderr)."""
    mode = 'spawn' if args.spawn else 'save' if args.save else 'auto'
    try:
        result = view(args.path, episode=args.episode, out=args.out, mode=mode)
    except (ViewError, OSError) as e:
        print(f'il-ros view: {e}', file=sys.stderr)
        return 2
    print(format_result(result))
    return 0


def add_view_parser(sub) -> None:
    """Add the ``view`` subcommand to ``il-ros``'s subparsers."""
    p = sub.add_parser('view', help="look at an episode (a dataset's or a bag's) in Rerun: "
                       'the viewer, or an .rrd file when headless')
    p.add_argument('path', help='a dataset folder or an episode bag folder')
    p.add_argument('--episode', type=int, default=0, help='dataset episode (default 0)')
    p.add_argument('--out', metavar='FILE.rrd', help='write this .rrd file (implies --save; '
                   'default beside the input: DATASET_episode_N.rrd or BAG.rrd)')
    how = p.add_mutually_exclusive_group()
    how.add_argument('--spawn', action='store_true', help='open the Rerun viewer')
    how.add_argument('--save', action='store_true', help='write an .rrd file (the default '
                     'when no viewer can open: no display or no rerun executable)')
    p.set_defaults(func=_cmd_view)

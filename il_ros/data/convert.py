"""Bags -> dataset episodes, with a validation report. A bad episode never stops the rest.

Per bag: read the role streams (bag_reader), pick a time base per stream, check it
(monotonic time, constant image size/encoding, constant joint set, finite values, staleness,
length), resample onto the control-rate grid (resample), label every frame from the control
source, and append the episode to the store. Rejected bags are listed with file, topic, time
and reason in ``<dataset>/conversion_report.json``; the others still convert.

Interrupted episodes are not converted silently: an ``incomplete`` episode (the recorder was
shut down mid-episode, a topic was missing or a write failed) is skipped with a warning
naming it, or converted and labelled (``keep_incomplete``, ``--keep-incomplete``); a
recording cut off by a kill (JSON still ``recording``, or an MCAP without
``metadata.yaml``) is skipped, with a pointer to ``il-ros bag-recover``. An episode the
recorder marked ``complete_with_loss`` converts, with a warning naming the lossy topics.

A stream staler than ``stale_reject`` periods at some tick rejects the episode. With
``stale_action_hold`` (``il-ros dagger`` sets it; plain ``il-ros convert`` does not) the
action stream is treated apart: ticks whose newest command is older than that are labelled
``hold`` (weight 0 in training) and the rest of the episode is kept.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from il_ros import keys
from il_ros.data.bag_reader import BagError, BagFile
from il_ros.data.episodes import (episode_status, lossy_topics, STATUS_COMPLETE_WITH_LOSS,
                                  STATUS_INCOMPLETE, STATUS_RECORDING)
from il_ros.data.resample import (choose_timing, first_backwards, latest_at_or_before,
                                  staleness, tick_grid)
from il_ros.data.store import encode_labels, LABEL_KEY, TIME_KEY
from il_ros.data.topic_map import ConvertConfig
from il_ros.robot import load_robot



@dataclass
class EpisodeReport:
    """What happened to one bag."""

    bag: str
    status: str = 'converted'          # converted | rejected | skipped
    reason: str = ''                   # why rejected / skipped
    frames: int = 0
    episode: int | None = None         # index in the dataset
    success: bool | None = None
    time_sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stale_hold: int = 0                # frames labelled hold for a stale action
    episode_status: str | None = None  # the recorder's status (None: no episode JSON)


def find_bags(inputs: list[str | Path]) -> tuple[list[Path], list[EpisodeReport]]:
    """Find the bag folders (holding metadata.yaml) under the inputs, sorted.

    Also returns reports for folders with bag files but no metadata.yaml (a recording cut
    off before it closed).
    """
    bags, broken = set(), []
    for item in map(Path, inputs):
        if not item.exists():
            broken.append(EpisodeReport(str(item), 'rejected', 'path does not exist'))
        elif (item / 'metadata.yaml').is_file():
            bags.add(item)
        elif item.is_dir():
            for meta in item.rglob('metadata.yaml'):
                bags.add(meta.parent)
            for f in [*item.rglob('*.mcap'), *item.rglob('*.db3')]:
                if not (f.parent / 'metadata.yaml').is_file() and f.parent not in bags:
                    broken.append(EpisodeReport(str(f.parent), 'skipped', CUT_OFF))
        else:
            broken.append(EpisodeReport(str(item), 'rejected',
                                        'not a rosbag2 folder (no metadata.yaml)'))
    uniq = {r.bag: r for r in broken}
    return sorted(bags), sorted(uniq.values(), key=lambda r: r.bag)


CUT_OFF = ('partial recording: no metadata.yaml, the recording was cut off before it '
           'closed (`il-ros bag-recover BAG` copies out its complete chunks)')


def interrupted(bag: Path, cfg: ConvertConfig) -> EpisodeReport | None:
    """A 'skipped' report for an interrupted episode that is not to be converted, or None."""
    try:
        meta = _episode_meta(bag)
    except BagError:        # unreadable metadata: convert_bag rejects it, naming the file
        return None
    status = episode_status(meta) if meta and isinstance(meta, dict) else None
    if status == STATUS_RECORDING:
        return EpisodeReport(str(bag), 'skipped', 'partial episode (the recorder stopped '
                             'mid-episode; `il-ros bag-recover BAG` copies out its complete '
                             'chunks)', episode_status=status)
    if status == STATUS_INCOMPLETE and not cfg.keep_incomplete:
        why = meta.get('error') or '; '.join(meta.get('warnings') or []) or 'no reason given'
        return EpisodeReport(str(bag), 'skipped', f'incomplete episode ({why}); '
                             '--keep-incomplete converts it', episode_status=status)
    return None


def source_id(bag: Path, sample: int = 1 << 20) -> str:
    """Content id of a bag folder: the same bag always gets the same id.

    Hashes metadata.yaml (message counts, start time and duration to the nanosecond) and,
    per file, its size plus its first and last ``sample`` bytes, so a multi-GB bag is
    identified without reading it whole.
    """
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in bag.rglob('*') if p.is_file()):
        size = f.stat().st_size
        h.update(f'{f.relative_to(bag).as_posix()}:{size}'.encode())
        with open(f, 'rb') as fh:
            h.update(fh.read(sample))
            if size > 2 * sample:
                fh.seek(size - sample)
                h.update(fh.read(sample))
    return h.hexdigest()


def _episode_meta(bag: Path) -> dict:
    """The recorder's metadata beside the bag (episode_0003.json), or {}."""
    side = bag.with_suffix('.json')
    if side.is_file():
        try:
            return json.loads(side.read_text())
        except ValueError as e:
            raise BagError(f'{side}: unreadable episode metadata: {e}') from None
    return {}


def label_frames(sources: list[str] | None, n: int, pre_frames: int,
                 warnings: list[str]) -> np.ndarray:
    """Label each frame by its control source (no control source: all demo).

    The ``pre_frames`` policy frames before each takeover are relabelled pre_intervention.
    """
    if sources is None:
        return np.array([keys.SOURCE_DEMO] * n, dtype=object)
    labels = np.array(sources, dtype=object)
    unknown = sorted(set(labels) - set(keys.TOPIC_SOURCES))
    if unknown:
        warnings.append(f'unknown control source value(s) {unknown} labelled demo')
        labels[np.isin(labels, unknown)] = keys.SOURCE_DEMO
    takeovers = np.flatnonzero((labels[1:] == keys.SOURCE_INTERVENTION)
                               & (labels[:-1] != keys.SOURCE_INTERVENTION)) + 1
    for t in takeovers:
        lo = max(0, t - pre_frames)
        window = labels[lo:t]
        window[window == keys.SOURCE_POLICY] = keys.SOURCE_PRE_INTERVENTION
    return labels


def convert_bag(bag: Path, cfg: ConvertConfig, report: EpisodeReport, sid: str):
    """Frames and meta of one bag (content id ``sid``); raises BagError when rejected."""
    meta = _episode_meta(bag)
    status = report.episode_status = episode_status(meta) if meta else None
    if status == STATUS_RECORDING:
        raise BagError(f'{bag}: partial episode (the recorder stopped mid-episode)')
    if status == STATUS_INCOMPLETE:
        report.warnings.append('converted an incomplete episode (--keep-incomplete): '
                               + (meta.get('error') or '; '.join(meta.get('warnings') or [])
                                  or 'no reason given'))
    elif status == STATUS_COMPLETE_WITH_LOSS:
        report.warnings.append('the recorder marked this episode complete_with_loss: '
                               + '; '.join(lossy_topics(meta) or ['see its warnings']))
    report.success = meta.get('success')
    period = 1.0 / cfg.rate_hz
    with BagFile(bag, cfg) as bf:
        data = bf.read_streams()
        report.warnings += data.warnings
        times, idx = {}, {}
        for role, s in data.streams.items():
            if not s.items:
                raise BagError(f'{bag}: {s.topic} ({role}) has no messages')
            timing = choose_timing(s.stamps, s.receive, cfg.stamp_tolerance_s)
            report.time_sources[s.topic] = timing.source + (
                f' ({timing.note})' if timing.note else '')
            back = first_backwards(timing.times)
            if back is not None:
                raise BagError(f'{bag}: {s.topic}: time goes backwards: {timing.source} time '
                               f'{timing.times[back]:.3f}s follows '
                               f'{timing.times[back - 1]:.3f}s (received at '
                               f't={s.receive[back]:.3f}s)')
            times[role] = timing.times
            if role.startswith('camera/'):
                sig0 = s.items[0]
                for i, sig in enumerate(s.items):
                    if sig != sig0:
                        raise BagError(f'{bag}: {s.topic}: image format changed from {sig0} '
                                       f'to {sig} at t={timing.times[i]:.3f}s')
            elif role in ('joints', 'action'):
                bad = [i for i, v in enumerate(s.items) if not np.all(np.isfinite(v))]
                if bad:
                    raise BagError(f'{bag}: {s.topic}: NaN/Inf in {role} at '
                                   f't={timing.times[bad[0]]:.3f}s')
                sizes = {np.size(v) for v in s.items}
                if len(sizes) > 1:
                    raise BagError(f'{bag}: {s.topic}: {role} size changes {sorted(sizes)}')
        obs_roles = [r for r in data.streams if r not in ('source',)]
        first_cam = next(r for r in obs_roles if r.startswith('camera/'))
        ticks = tick_grid([times[r][0] for r in obs_roles],
                          [times[r][-1] for r in obs_roles], cfg.rate_hz,
                          anchor=times[first_cam])
        if ticks.size < cfg.min_frames:
            raise BagError(f'{bag}: too short: {ticks.size} frames at {cfg.rate_hz} Hz where '
                           f'all role streams overlap (min_frames={cfg.min_frames})')
        stale_hold = None      # ticks whose action is too old to be their label
        for role in data.streams:
            look = cfg.action_lookahead * period if role == 'action' else 0.0
            idx[role] = latest_at_or_before(times[role], ticks, look)
            if role == 'source':
                continue
            st = staleness(times[role], ticks, idx[role], period, cfg.stale_warn)
            topic = data.streams[role].topic
            if role == 'action' and cfg.stale_action_hold > 0:
                stale_hold = st.age > cfg.stale_action_hold
                n = report.stale_hold = int(stale_hold.sum())
                if n > cfg.max_hold_fraction * ticks.size:
                    raise BagError(f'{bag}: {topic}: stale over {cfg.stale_action_hold} '
                                   f'periods at {n} of {ticks.size} ticks (worst '
                                   f'{st.worst_periods:.1f} at t={st.worst_tick_time:.3f}s): '
                                   f'more than max_hold_fraction {cfg.max_hold_fraction:g}')
                if n:
                    report.warnings.append(
                        f'{topic}: stale over {cfg.stale_action_hold} periods at {n} '
                        f'tick(s), worst {st.worst_periods:.1f} at '
                        f't={st.worst_tick_time:.3f}s: labelled hold')
            elif st.worst_periods > cfg.stale_reject:
                raise BagError(f'{bag}: {topic}: stale for {st.worst_periods:.1f} periods at '
                               f't={st.worst_tick_time:.3f}s (reject above '
                               f'{cfg.stale_reject})')
            if st.stale_ticks:
                report.warnings.append(
                    f'{topic}: stale over {cfg.stale_warn} periods at {st.stale_ticks} '
                    f'tick(s), worst {st.worst_periods:.1f} at t={st.worst_tick_time:.3f}s')
        frames = {keys.image_key(role.split('/', 1)[1]): bf.images(role, idx[role])
                  for role in data.streams if role.startswith('camera/')}
    joints = data.streams['joints'].items
    actions = data.streams['action'].items
    frames[keys.OBS_JOINT_POS] = np.stack([joints[i] for i in idx['joints']]).astype(np.float32)
    frames[keys.ACTION] = np.stack([actions[i] for i in idx['action']]).astype(np.float32)
    src = data.streams.get('source')
    sources = None
    if src is not None:
        sources = [src.items[i] if i >= 0 else keys.SOURCE_DEMO for i in idx['source']]
    frames[LABEL_KEY] = label_frames(sources, ticks.size, cfg.pre_intervention_frames,
                                   report.warnings)
    if stale_hold is not None:
        # After the pre-intervention relabelling, so a gap inside an intervention does not
        # count as a hand-back and a new takeover.
        frames[LABEL_KEY][stale_hold] = keys.SOURCE_HOLD
    frames[TIME_KEY] = ticks
    meta_out = {'source_bag': str(bag), 'source_id': sid,
                'success': report.success, 'task': meta.get('task'),
                'joint_names': data.joint_names, 'time_sources': report.time_sources,
                'warnings': report.warnings, 'rate_hz': cfg.rate_hz,
                'episode_status': report.episode_status,
                'stale_hold_frames': report.stale_hold}
    if cfg.robot:
        robot = load_robot(cfg.robot)
        meta_out.update(robot=robot.to_dict(), action_names=robot.action_names)
    return frames, meta_out


def _convert_one(job: tuple[Path, ConvertConfig, str]):
    """Worker: (report, frames, meta) of one bag; frames is None when rejected."""
    bag, cfg, sid = job
    report = EpisodeReport(str(bag))
    try:
        frames, meta = convert_bag(bag, cfg, report, sid)
    except BagError as e:
        report.status, report.reason = 'rejected', str(e)
        return report, None, None
    frames[LABEL_KEY] = encode_labels(frames[LABEL_KEY])
    report.frames = int(frames[TIME_KEY].size)
    return report, frames, meta


def convert(inputs: list[str | Path], out: str | Path, cfg: ConvertConfig | None = None,
            progress: bool = True, workers: int = 1) -> list[EpisodeReport]:
    """Convert bags into the dataset at ``out`` (appending); returns one report per bag.

    Bags are converted in ``workers`` processes (bags are independent) and appended in
    sorted order, so the dataset does not depend on which worker finished first.
    """
    from tqdm import tqdm

    from il_ros.data.store import DatasetWriter
    cfg = cfg or ConvertConfig()
    out = Path(out)
    bags, reports = find_bags(inputs)
    writer = DatasetWriter(out, create=True)
    pool = None
    try:
        jobs, queued = [], {}
        for bag in bags:
            skip = interrupted(bag, cfg)
            if skip is not None:
                reports.append(skip)
                continue
            sid = source_id(bag)
            if writer.has_source(sid):
                reports.append(EpisodeReport(str(bag), 'skipped', 'already in the dataset'))
            elif sid in queued:          # a copy of a bag given in the same call
                reports.append(EpisodeReport(str(bag), 'skipped',
                                             f'same content as {queued[sid]}'))
            else:
                queued[sid] = bag
                jobs.append((bag, cfg, sid))
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp
            pool = mp.get_context('fork').Pool(min(workers, len(jobs)))
            results = pool.imap(_convert_one, jobs)  # in job order
        else:
            results = map(_convert_one, jobs)
        for report, frames, meta in tqdm(results, total=len(jobs), desc='convert',
                                         unit='bag', disable=not progress):
            reports.append(report)
            if frames is not None:
                report.episode = writer.append_episode(frames, meta)
    finally:
        if pool is not None:
            pool.terminate()
        writer.close()
    reports.sort(key=lambda r: r.bag)
    _write_report(out, reports, cfg)
    return reports


def _write_report(out: Path, reports: list[EpisodeReport], cfg: ConvertConfig) -> None:
    path = out / 'conversion_report.json'
    history = []
    if path.is_file():
        try:
            history = json.loads(path.read_text()).get('runs', [])
        except ValueError:
            history = []
    run = {'config': asdict(cfg), 'episodes': [asdict(r) for r in reports]}
    path.write_text(json.dumps({'runs': history + [run]}, indent=1, default=str))


def format_reports(reports: list[EpisodeReport]) -> str:
    """A human-readable summary: one line per bag, rejections with their reasons."""
    lines = []
    for r in reports:
        head = f'{r.status:9s} {Path(r.bag).name}'
        if r.status == 'converted':
            head += f'  {r.frames} frames -> episode {r.episode}, success={r.success}'
            if r.episode_status not in (None, 'complete', 'unknown'):
                head += f' ({r.episode_status})'
        else:
            head += f'  {r.reason}'
        lines.append(head)
        lines += [f'          warning: {w}' for w in r.warnings]
    n = {s: sum(r.status == s for r in reports) for s in ('converted', 'skipped', 'rejected')}
    lines.append(f'{n["converted"]} converted, {n["skipped"]} skipped, {n["rejected"]} rejected')
    return '\n'.join(lines)

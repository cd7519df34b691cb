"""Summarize rosbag2 bags: per-topic counts, rates, durations and gaps, plus episode metadata.

``summarize(path)`` takes one bag folder (MCAP or sqlite3, recorded by anyone) or a folder of
them (an episode folder). For each bag it reads every message once and computes the stats
from header stamps when the type begins with a ``std_msgs/Header`` and all stamps are
non-zero, else from the bag's receive (log) time. The ``episode_NNNN.json`` written by
:mod:`il_ros.data.episode_writer` beside a bag adds status, success, task, drops and
warnings. A bag that cannot be read gives an ``error`` entry that names the file; the other
bags are still summarized. ``format_summary`` renders the dict as a table.
"""
from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores

from il_ros.data.episodes import episode_status, STATUS_RECORDING

MAX_GAPS = 50  # gaps listed per topic; ``gap_count`` has the total
PARTIAL = 'partial (recorder stopped mid-episode)'
HEADER_TYPES = ('std_msgs/msg/Header', 'std_msgs/Header', 'Header')


def header_stamp_ns(data: bytes) -> int:
    """Stamp of a CDR message whose first field is a ``std_msgs/Header`` (0 if too short).

    After the 4-byte encapsulation header come int32 sec and uint32 nanosec; byte 1 of the
    encapsulation says the endianness (odd: little-endian).
    """
    if len(data) < 12:
        return 0
    sec, nanosec = struct.unpack_from('<iI' if data[1] & 1 else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec


def starts_with_header(typestore, msgtype: str, msgdef: str = '') -> bool:
    """True if ``msgtype``'s first field is a ``std_msgs/Header``.

    Looks the type up in ``typestore``; for a type it does not know, reads the first field
    of the ``.msg`` definition text ``msgdef`` (as stored in a bag).
    """
    if msgtype in typestore.fielddefs:
        fields = typestore.fielddefs[msgtype][1]
        return bool(fields) and fields[0][1][1] == 'std_msgs/msg/Header'
    for line in msgdef.splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            return line.split()[0] in HEADER_TYPES
    return False


def typical_period_ns(intervals) -> float | None:
    """The period a stream was published at, from its positive intervals (ns).

    The median of the intervals at most 1.5x the 10th percentile: a plain median doubles
    when half the messages are lost at random, this does not (the shortest intervals are
    the undisturbed ones). None without a positive interval.
    """
    d = np.asarray(intervals, dtype=np.float64)
    d = d[d > 0]
    if d.size == 0:
        return None
    return float(np.median(d[d <= 1.5 * np.percentile(d, 10)]))


def topic_stats(times_ns, expected_hz: float | None = None, estimate: bool = False) -> dict:
    """Count, duration, rate, gaps and lost messages of a time series.

    The expected period is ``1 / expected_hz`` when given (``expected_rate_source``
    ``parameter``), else with ``estimate`` (header stamps: the publisher's own clock) the
    :func:`typical_period_ns` of the series (``estimated``), else unknown. Gaps are
    intervals longer than 2 expected periods (2x the median interval when unknown);
    ``lost`` estimates the messages missing between the first and the last one (the span
    at the expected rate, less the count), ``loss_fraction`` is lost / (count + lost); both are
    None when the expected period is unknown.
    """
    t = np.sort(np.asarray(times_ns, dtype=np.int64))
    n = int(t.size)
    out = {'count': n, 'first_ns': None, 'last_ns': None, 'duration_s': 0.0, 'rate_hz': None,
           'median_period_s': None, 'gap_count': 0, 'gaps': [],
           'expected_rate_hz': float(expected_hz) if expected_hz else None,
           'expected_rate_source': 'parameter' if expected_hz else None,
           'lost': None, 'loss_fraction': None}
    if expected_hz:
        out.update(lost=0, loss_fraction=0.0)
    if n == 0:
        return out
    duration = (t[-1] - t[0]) / 1e9
    out.update(first_ns=int(t[0]), last_ns=int(t[-1]), duration_s=float(duration))
    if n >= 2 and duration > 0:
        out['rate_hz'] = (n - 1) / duration
    if n < 3:
        return out
    d = np.diff(t)
    median = float(np.median(d))
    out['median_period_s'] = median / 1e9
    period = 1e9 / expected_hz if expected_hz else None
    if period is None and estimate:
        period = typical_period_ns(d)
        if period:
            out.update(expected_rate_hz=1e9 / period, expected_rate_source='estimated')
    if period:
        # Messages the span should hold at the expected rate, less those that arrived. Not the
        # sum over gaps: a publisher that stalls and then catches up (bursts, as a Python
        # publisher on a busy machine does) leaves gaps but loses nothing.
        lost = max(0, int(np.rint((t[-1] - t[0]) / period)) + 1 - n)
        out.update(lost=lost, loss_fraction=lost / (n + lost))
    limit = 2 * (period or median)
    if limit > 0:
        idx = np.nonzero(d > limit)[0]
        out['gap_count'] = int(idx.size)
        out['gaps'] = [{'start_ns': int(t[i]), 'end_ns': int(t[i + 1]),
                        'at_s': float((t[i] - t[0]) / 1e9),
                        'length_s': float(d[i] / 1e9)} for i in idx[:MAX_GAPS]]
    return out


def is_bag(path: Path) -> bool:
    """True if ``path`` is a rosbag2 folder (metadata.yaml or a storage file inside)."""
    return path.is_dir() and ((path / 'metadata.yaml').exists()
                              or any(path.glob('*.mcap')) or any(path.glob('*.db3')))


def _bag_file(bag: Path) -> Path:
    files = sorted(bag.glob('*.mcap')) + sorted(bag.glob('*.db3'))
    return files[0] if len(files) == 1 else bag


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def _episode_status(meta: dict) -> str:
    status = episode_status(meta)
    if status != STATUS_RECORDING:
        return status
    # 'recording' is only true while the recorder that wrote it still runs on this host.
    if meta.get('host') == socket.gethostname() and _pid_alive(meta.get('recorder_pid')):
        return 'recording (in progress)'
    return PARTIAL


def read_bag_stats(bag: Path, expected: dict[str, float] | None = None) -> dict:
    """Read every message of one bag; per-topic stats. Raises on an unreadable bag.

    ``expected``: ``{topic: Hz}`` expected rates (the recorder's, from the episode JSON);
    other header-stamped topics get an estimated one (see :func:`topic_stats`).
    """
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        conns = {c.id: c for c in reader.connections}
        topics: dict[str, dict] = {}
        for c in conns.values():
            header = starts_with_header(typestore, c.msgtype, c.msgdef.data or '')
            topics.setdefault(c.topic, {'type': c.msgtype, 'header': header, 'recv': [],
                                        'stamps': []})
        for conn, timestamp, data in reader.messages():
            entry = topics[conn.topic]
            entry['recv'].append(timestamp)
            if entry['header']:
                entry['stamps'].append(header_stamp_ns(data))
    suffixes = {p.suffix for p in bag.iterdir()}
    storage = 'mcap' if '.mcap' in suffixes else 'sqlite3' if '.db3' in suffixes else None
    out = {}
    for topic, e in sorted(topics.items()):
        use_header = e['header'] and e['stamps'] and all(e['stamps'])
        out[topic] = {'type': e['type'], 'time_source': 'header' if use_header else 'receive',
                      **topic_stats(e['stamps'] if use_header else e['recv'],
                                    expected_hz=(expected or {}).get(topic),
                                    estimate=bool(use_header))}
    recv = [t for e in topics.values() if e['recv'] for t in (min(e['recv']), max(e['recv']))]
    duration = (max(recv) - min(recv)) / 1e9 if recv else None
    return {'storage': storage, 'topics': out, 'duration_s': duration}


def summarize_bag(bag: Path) -> dict:
    """Summary of one bag folder, with its episode JSON if there is one; never raises."""
    entry = {'path': str(bag), 'name': bag.name, 'status': None, 'success': None,
             'episode': None, 'storage': None, 'message_count': 0, 'duration_s': None,
             'topics': {}, 'error': None}
    meta_path = bag.parent / f'{bag.name}.json'
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            entry['episode'] = meta
            entry['status'] = _episode_status(meta)
            entry['success'] = meta.get('success')
        except (OSError, ValueError) as err:
            entry['error'] = f'{meta_path}: unreadable episode metadata: {err}'
    if entry['status'] == 'discarded':
        return entry
    if entry['status'] in (PARTIAL, 'recording (in progress)'):
        entry['error'] = (f'{_bag_file(bag)}: bag not finalized (no summary, no '
                          'metadata.yaml); only the episode metadata is shown')
        return entry
    if not bag.is_dir():
        entry['error'] = f'{bag}: bag folder missing'
        return entry
    recorded = (entry['episode'] or {}).get('topics') or {}
    expected = {t: v['expected_rate_hz'] for t, v in recorded.items()
                if isinstance(v, dict) and v.get('expected_rate_source') == 'parameter'
                and v.get('expected_rate_hz')}
    try:
        stats = read_bag_stats(bag, expected)
    except Exception as err:  # rosbags raises many kinds on corrupt or truncated input
        entry['error'] = (f'{_bag_file(bag)}: corrupt or truncated bag '
                          f'({type(err).__name__}: {err})')
        return entry
    entry.update(storage=stats['storage'], topics=stats['topics'],
                 duration_s=stats['duration_s'],
                 message_count=sum(t['count'] for t in stats['topics'].values()))
    if entry['episode']:
        for topic, t in entry['topics'].items():
            t['drops'] = recorded.get(topic, {}).get('drops', 0)
        for topic, t in recorded.items():  # registered or expected, but no message
            if topic not in entry['topics']:
                entry['topics'][topic] = {'type': t.get('type'), 'time_source': None,
                                          **topic_stats([]), 'drops': t.get('drops', 0)}
    return entry


def find_bags(root: Path) -> list[Path]:
    """Bag folders under ``root``: itself, or its sub-folders and episode JSONs."""
    if root.is_file() and root.suffix in ('.mcap', '.db3'):
        return [root.parent]
    if is_bag(root):
        return [root]
    names = {p.name for p in root.iterdir() if p.is_dir() and is_bag(p)}
    names |= {p.name[:-5] for p in root.glob('episode_*.json')}
    return [root / n for n in sorted(names)]


def summarize(path) -> dict:
    """Summarize a bag folder or a folder of bags.

    Returns ``{'path', 'bags': [per-bag dict], 'errors': [str]}``; each per-bag dict has
    ``status``/``success`` (from the episode JSON, else None), ``topics`` (type, count,
    rate_hz, duration_s, gaps, time_source) and ``error`` (None, or a message naming the
    file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotADirectoryError: ``path`` is a file that is not a bag storage file.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f'{root}: no such bag or folder')
    if root.is_file() and root.suffix not in ('.mcap', '.db3'):
        raise NotADirectoryError(f'{root}: not a bag folder, an episode folder or a bag file')
    bags = [summarize_bag(b) for b in find_bags(root)]
    return {'path': str(root), 'bags': bags,
            'errors': [b['error'] for b in bags if b['error']]}


def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def format_summary(summary: dict) -> str:
    """Human-readable table of a :func:`summarize` result."""
    lines = []
    for bag in summary['bags']:
        ep = bag['episode'] or {}
        head = [bag['path']]
        if bag['storage']:
            head.append(f'[{bag["storage"]}]')
        if bag['status']:
            head.append(f'status: {bag["status"]}')
        if ep:
            ok = {True: 'yes', False: 'no', None: '-'}.get(bag['success'], '-')
            head += [f'success: {ok}', f'task: {ep.get("task") or "-"}']
        if bag['duration_s'] is not None:
            head.append(f'{bag["duration_s"]:.2f} s, {bag["message_count"]} msgs')
        lines.append('  '.join(head))
        if bag['error']:
            lines.append(f'  ERROR: {bag["error"]}')
        if bag['topics']:
            w = max(len('topic'), *(len(t) for t in bag['topics']))
            wt = max(len('type'), *(len(t['type'] or '-') for t in bag['topics'].values()))
            lines.append(f'  {"topic":<{w}}  {"type":<{wt}}  {"count":>7}  {"rate Hz":>8}  '
                         f'{"exp Hz":>7}  {"dur s":>7}  {"gaps":>5}  {"lost":>5}  '
                         f'{"drops":>5}  time')
            for name, t in bag['topics'].items():
                lines.append(
                    f'  {name:<{w}}  {t["type"] or "-":<{wt}}  {t["count"]:>7}  '
                    f'{_fmt(t["rate_hz"], ".2f"):>8}  '
                    f'{_fmt(t.get("expected_rate_hz"), ".1f"):>7}  '
                    f'{_fmt(t["duration_s"], ".2f"):>7}  {t["gap_count"]:>5}  '
                    f'{_fmt(t.get("lost"), "d"):>5}  {t.get("drops", 0):>5}  '
                    f'{t["time_source"] or "-"}')
                for g in t['gaps'][:3]:
                    lines.append(f'  {"":<{w}}    gap of {g["length_s"]:.3f} s '
                                 f'at +{g["at_s"]:.3f} s')
        for warning in ep.get('warnings', []):
            lines.append(f'  warning: {warning}')
        if ep.get('error') and ep.get('error') != bag['error']:
            lines.append(f'  episode error: {ep["error"]}')
    lines.append(f'{len(summary["bags"])} bag(s), {len(summary["errors"])} error(s)')
    return '\n'.join(lines)

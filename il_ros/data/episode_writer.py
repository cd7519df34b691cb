"""Write one rosbag2 bag per episode from raw CDR bytes, off the caller's thread.

Layout under ``output_dir``::

    episode_0000/          the rosbag2 bag folder (MCAP by default, or sqlite3)
    episode_0000.json      metadata: task, operator, success, status, per-topic stats, drops

Design decisions:

- The producer (a ROS callback) calls :meth:`EpisodeWriter.write`, which only puts the bytes
  on a bounded queue and never blocks. When the queue is full the message is dropped, counted
  per topic and reported loudly (an error log, then a summary every 2 s, and a warning plus
  per-topic ``drops`` in the metadata).
- One writer thread per episode owns the ``rosbags`` writer; every disk write happens there.
- Bags are written with rosbag2 metadata version 8 by default (``bag_version``; 8 or 9):
  Humble's reader refuses version 9, whose ``offered_qos_profiles`` is a YAML list instead
  of a string; Jazzy and Kilted read both. The version is kept in the episode JSON.
- Episode numbers continue after the highest existing ``episode_NNNN`` (folder or JSON) in
  the folder, and a bag folder is created exclusively, so nothing is ever overwritten.
- Status in the JSON: ``recording`` while open (rewritten about once a second with running
  counts), then ``complete``, ``incomplete`` (an expected topic never published, or a write
  error) or ``discarded`` (the bag folder is deleted; the JSON stays as a record so the number
  is not reused). A recorder killed mid-episode leaves ``recording`` behind: that episode is
  partial. Its MCAP has every 1 MB chunk written before the kill but no summary and no
  ``metadata.yaml``, so readers refuse it; ``il-ros bag-recover`` copies those chunks into a
  new bag (:mod:`il_ros.data.bag_recover`). Finished bags are never touched again.
- Rates and gaps use the header stamp when the message type begins with a
  ``std_msgs/Header`` and every stamp is non-zero, else the receive (log) time; the metadata
  says which in ``time_source``.
- Loss is made visible per topic: the expected rate (``expected_rates``, else estimated from
  the header stamps), the measured rate, the gaps (over 2 expected periods) and an estimate
  of the messages ``lost`` (see :func:`il_ros.data.bag_info.topic_stats`; writer-queue drops
  count too). An episode that would be ``complete`` but lost more than
  ``max_loss_fraction`` of a topic is ``complete_with_loss``, with a warning naming the topic.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

from il_ros.data.bag_info import header_stamp_ns, starts_with_header, topic_stats
from il_ros.data.episodes import (STATUS_COMPLETE, STATUS_COMPLETE_WITH_LOSS,
                                  STATUS_DISCARDED, STATUS_INCOMPLETE, STATUS_RECORDING)
from il_ros.fsio import atomic_write_json

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_VERSIONS = (8, 9)      # rosbag2 metadata versions rosbags writes
DEFAULT_BAG_VERSION = 8    # read by Humble, Jazzy and Kilted (Humble refuses 9)
META_FORMAT = 'il_ros.episode/1'
_STOP = object()


class EpisodeError(RuntimeError):
    """An episode could not be opened or written; the message names the path."""


def episode_name(index: int) -> str:
    """Folder name of episode ``index``."""
    return f'episode_{index:04d}'


def next_episode_index(output_dir: str | os.PathLike) -> int:
    """One past the highest episode number found in ``output_dir`` (0 when there is none)."""
    highest = -1
    root = Path(output_dir)
    if root.is_dir():
        for p in root.iterdir():
            stem = p.name[:-5] if p.name.endswith('.json') else p.name
            if stem.startswith('episode_') and stem[8:].isdigit():
                highest = max(highest, int(stem[8:]))
    return highest + 1


def write_json(path: Path, obj: dict, sync: bool = True) -> None:
    """Write episode metadata atomically (:func:`il_ros.fsio.atomic_write_json`)."""
    atomic_write_json(path, obj, sync=sync)


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EpisodeError(f'output folder {path} cannot be created: {err.strerror or err}') \
            from err
    if not path.is_dir():
        raise EpisodeError(f'output path {path} exists and is not a folder')
    if not os.access(path, os.W_OK | os.X_OK):
        raise EpisodeError(f'output folder {path} is not writable')


class EpisodeWriter:
    """One episode: a bag folder plus its JSON, written by a thread fed from a bounded queue.

    Use :meth:`open` to create one, :meth:`add_topic` then :meth:`write` from the producer,
    and :meth:`finish` (or :meth:`discard`) once. ``bag_factory(path, plugin)`` may replace
    the ``rosbags`` writer (tests use it to slow the sink or to inject ``ENOSPC``).
    """

    def __init__(self, output_dir, index, *, storage='mcap', queue_size=1000, task='',
                 operator='', expected_topics=(), typestore=None, extra=None,
                 logger=None, bag_factory=None, expected_rates=None,
                 max_loss_fraction=0.01, bag_version=DEFAULT_BAG_VERSION):
        """Prepare episode ``index``; nothing touches the disk before :meth:`open`."""
        if storage not in STORAGES:
            raise ValueError(f'storage must be one of {sorted(STORAGES)}, got {storage!r}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if bag_version not in BAG_VERSIONS:
            raise ValueError(f'bag_version must be one of {list(BAG_VERSIONS)}, '
                             f'got {bag_version!r}')
        if not 0 <= max_loss_fraction <= 1:
            raise ValueError(f'max_loss_fraction must be in [0, 1], got {max_loss_fraction}')
        self.expected_rates = {t: float(hz) for t, hz in (expected_rates or {}).items()}
        self.max_loss_fraction = float(max_loss_fraction)
        self.output_dir = Path(output_dir)
        self.index = index
        self.name = episode_name(index)
        self.bag_path = self.output_dir / self.name
        self.json_path = self.output_dir / f'{self.name}.json'
        self.storage = storage
        self.queue_size = queue_size
        self.typestore = typestore or get_typestore(Stores.ROS2_KILTED)
        self.log = logger or logging.getLogger('il_ros.episode_writer')
        self._bag_factory = bag_factory or (
            lambda path, plugin: Writer(path, version=bag_version, storage_plugin=plugin))
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._topics: dict[str, dict] = {}        # topic -> {type, header, qos}
        self._conns: dict = {}                    # writer thread only
        self._recv: dict[str, list[int]] = {}     # writer thread only
        self._stamps: dict[str, list[int]] = {}   # writer thread only
        self._counts: dict[str, int] = {}
        self._drops: dict[str, int] = {}
        self._drop_lock = threading.Lock()
        self._last_drop_log = 0.0
        self._warnings: list[str] = []
        self.error: str | None = None
        self._bag = None
        self._open_error: Exception | None = None
        self._abort = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self.meta = {
            'format': META_FORMAT, 'episode': index, 'bag': self.name, 'storage': storage,
            'bag_version': bag_version,
            'task': task, 'operator': operator, 'success': None,
            'status': STATUS_RECORDING, 'start_time_ns': None, 'stop_time_ns': None,
            'start_wall': None, 'stop_wall': None, 'duration_s': None,
            'queue_size': queue_size, 'expected_topics': sorted(expected_topics),
            'expected_rates': dict(sorted(self.expected_rates.items())),
            'max_loss_fraction': self.max_loss_fraction,
            'topics': {}, 'drops_total': 0, 'warnings': self._warnings, 'error': None,
            'recorder_pid': os.getpid(), 'host': socket.gethostname(),
            **(extra or {}),
        }

    @classmethod
    def open(cls, output_dir, *, start_time_ns=0, **kwargs) -> EpisodeWriter:
        """Create the next episode in ``output_dir`` and start its writer thread.

        Raises:
            EpisodeError: the folder cannot be created or written (the message names it).
        """
        root = Path(output_dir).expanduser()
        _ensure_dir(root)
        index = next_episode_index(root)
        for _ in range(1000):  # another recorder may take a number between our look and mkdir
            ep = cls(root, index, **kwargs)
            if not ep.json_path.exists():
                try:
                    ep._start(start_time_ns)
                    return ep
                except FileExistsError:
                    pass
            index += 1
        raise EpisodeError(f'no free episode number in {root}')

    def _start(self, start_time_ns: int) -> None:
        existed = self.bag_path.exists()
        opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(opened,),
                                        name=f'{self.name}-writer', daemon=True)
        self._thread.start()  # the bag is opened on the writer thread (sqlite3 needs that)
        opened.wait()
        err = self._open_error
        if err is not None:
            self._thread.join()
            if existed or isinstance(err, FileExistsError):
                raise FileExistsError(str(self.bag_path)) from err
            what = getattr(err, 'strerror', None) or str(err)
            raise EpisodeError(f'cannot create bag {self.bag_path}: {what}') from err
        self.meta['start_time_ns'] = int(start_time_ns)
        self.meta['start_wall'] = datetime.now(timezone.utc).isoformat()
        try:
            write_json(self.json_path, self.meta)
        except OSError as err:
            self._abort = True
            self._stop_thread()
            shutil.rmtree(self.bag_path, ignore_errors=True)
            raise EpisodeError(f'cannot write episode metadata {self.json_path}: '
                               f'{err.strerror or err}') from err

    # ---- producer side (never blocks) ----

    def add_topic(self, topic: str, msgtype: str, qos_profiles=()) -> None:
        """Register ``topic`` before its first :meth:`write`.

        Raises:
            EpisodeError: the typestore does not know ``msgtype``.
        """
        if topic in self._topics:
            return
        if msgtype not in self.typestore.fielddefs:
            raise EpisodeError(f'cannot record {topic}: message type {msgtype} is unknown '
                               'to the rosbags typestore')
        self._counts.setdefault(topic, 0)
        self._topics[topic] = {'type': msgtype, 'qos': list(qos_profiles),
                               'header': starts_with_header(self.typestore, msgtype)}

    def write(self, topic: str, data: bytes, log_time_ns: int) -> bool:
        """Queue one raw CDR message; returns False (and counts a drop) if the queue is full."""
        if self._closed or self.error is not None:
            return False
        if topic not in self._topics:
            self.warn(f'message on unregistered topic {topic} ignored (call add_topic first)')
            return False
        try:
            self._queue.put_nowait((topic, data, log_time_ns))
            return True
        except queue.Full:
            self._count_drop(topic)
            return False

    def _count_drop(self, topic: str) -> None:
        with self._drop_lock:
            self._drops[topic] = self._drops.get(topic, 0) + 1
            now = time.monotonic()
            first = sum(self._drops.values()) == 1
            if not first and now - self._last_drop_log < 2.0:
                return
            self._last_drop_log = now
            summary = ', '.join(f'{t}: {n}' for t, n in sorted(self._drops.items()))
        self.log.error(f'{self.name}: writer queue full (queue_size={self.queue_size}), '
                       f'DROPPED messages so far: {summary}')

    def counts(self) -> dict[str, int]:
        """Messages written so far per registered topic (a snapshot)."""
        return dict(self._counts)

    def queue_depth(self) -> int:
        """Messages waiting for the writer thread now (approximate, for diagnostics)."""
        return self._queue.qsize()

    def drop_counts(self) -> dict[str, int]:
        """Messages dropped so far per topic because the writer queue was full."""
        with self._drop_lock:
            return dict(self._drops)

    def warn(self, text: str) -> None:
        """Add a warning to the episode metadata and log it."""
        if text not in self._warnings:
            self._warnings.append(text)
            self.log.warning(f'{self.name}: {text}')

    @property
    def alive(self) -> bool:
        """True while the episode accepts messages."""
        return not self._closed and self.error is None

    # ---- writer thread ----

    def _run(self, opened: threading.Event) -> None:
        try:
            self._bag = self._bag_factory(self.bag_path, STORAGES[self.storage])
            self._bag.open()
        except Exception as err:  # OSError, or rosbags' WriterError when the folder exists
            self._open_error = err
            return
        finally:
            opened.set()
        next_progress = time.monotonic() + 1.0
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None and self.error is None:
                try:
                    self._write_one(*item)
                except Exception as err:  # disk full, I/O error, ...: keep draining
                    self._fail(err)
            if time.monotonic() >= next_progress and self.error is None:
                next_progress = time.monotonic() + 1.0
                self._write_progress()
        if self._abort:
            self._bag.abort()
        elif self.error is None:
            try:
                self._bag.close()
            except Exception as err:
                self._fail(err)

    def _write_one(self, topic: str, data: bytes, log_time_ns: int) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            info = self._topics[topic]
            conn = self._bag.add_connection(topic, info['type'], typestore=self.typestore,
                                            offered_qos_profiles=info['qos'])
            self._conns[topic] = conn
            self._recv[topic] = []
            self._stamps[topic] = [] if info['header'] else None
        self._bag.write(conn, log_time_ns, data)
        self._recv[topic].append(log_time_ns)
        stamps = self._stamps[topic]
        if stamps is not None:
            stamps.append(header_stamp_ns(data))
        self._counts[topic] += 1

    def _fail(self, err: Exception) -> None:
        what = getattr(err, 'strerror', None) or str(err)
        self.error = f'writing {self.bag_path} failed: {what}'
        self.log.error(f'{self.name}: {self.error}; the episode is incomplete')
        try:
            self._bag.abort()
        except Exception:  # noqa: S110 - the storage is already broken
            pass

    def _write_progress(self) -> None:
        with self._drop_lock:
            drops = dict(self._drops)
        meta = dict(self.meta, topics={t: {'type': i['type'], 'count': self._counts.get(t, 0),
                                           'drops': drops.get(t, 0)}
                                       for t, i in list(self._topics.items())},
                    drops_total=sum(drops.values()), warnings=list(self._warnings))
        try:
            write_json(self.json_path, meta, sync=False)
        except OSError as err:
            self.log.error(f'{self.name}: cannot update {self.json_path}: {err}')

    # ---- end of episode ----

    def _stop_thread(self) -> None:
        self._closed = True
        self._queue.put(_STOP)  # may wait while the writer thread drains a full queue
        self._thread.join()

    def finish(self, success: bool | None, stop_time_ns: int, interrupted: bool = False) -> dict:
        """Flush, close the bag and write the final metadata; returns it.

        Status is ``incomplete`` if a write failed, an expected topic got no message or the
        episode was ``interrupted`` (the recorder shut down before a stop request); else
        ``complete_with_loss`` if a topic lost more than ``max_loss_fraction`` of its
        messages, else ``complete``.
        """
        if self._closed:
            raise EpisodeError(f'{self.name} is already finished')
        self._stop_thread()
        for topic in self.meta['expected_topics']:
            if self._counts.get(topic, 0) == 0:
                self.warn(f'expected topic {topic} published no message during the episode')
        missing = [t for t in self.meta['expected_topics'] if self._counts.get(t, 0) == 0]
        topics = self._topic_meta()
        lossy = [t for t, v in topics.items()
                 if (v['loss_fraction'] or 0.0) > self.max_loss_fraction]
        for topic in lossy:
            v = topics[topic]
            rate = '-' if v['rate_hz'] is None else f'{v["rate_hz"]:.1f}'
            self.warn(f'{topic} lost ~{v["lost"]} of {v["lost"] + v["count"]} messages '
                      f'({100 * v["loss_fraction"]:.1f}%, above max_loss_fraction '
                      f'{self.max_loss_fraction:g}): {rate} Hz measured, '
                      f'{_hz(v["expected_rate_hz"])} expected ({v["expected_rate_source"]}), '
                      f'{v["gap_count"]} gap(s), {v["drops"]} dropped by the writer queue')
        if self.error or missing or interrupted:
            status = STATUS_INCOMPLETE
        else:
            status = STATUS_COMPLETE_WITH_LOSS if lossy else STATUS_COMPLETE
        return self._finalize(status, success, stop_time_ns, topics)

    def discard(self, stop_time_ns: int) -> dict:
        """Stop, delete the bag folder and keep the JSON (status ``discarded``)."""
        if self._closed:
            raise EpisodeError(f'{self.name} is already finished')
        self._stop_thread()
        shutil.rmtree(self.bag_path, ignore_errors=True)
        return self._finalize(STATUS_DISCARDED, None, stop_time_ns)

    def _finalize(self, status: str, success, stop_time_ns: int, topics=None) -> dict:
        drops_total = sum(self._drops.values())
        if drops_total:
            self.warn(f'{drops_total} messages dropped because the writer queue was full '
                      f'(queue_size={self.queue_size}): '
                      + ', '.join(f'{t} ({n})' for t, n in sorted(self._drops.items())))
        start = self.meta['start_time_ns'] or 0
        self.meta.update(
            status=status, success=success, stop_time_ns=int(stop_time_ns),
            stop_wall=datetime.now(timezone.utc).isoformat(),
            duration_s=max(0, int(stop_time_ns) - start) / 1e9,
            topics=self._topic_meta() if topics is None else topics, drops_total=drops_total,
            error=self.error)
        try:
            write_json(self.json_path, self.meta)
        except OSError as err:
            msg = f'cannot write episode metadata {self.json_path}: {err.strerror or err}'
            self.error = self.error or msg
            self.log.error(f'{self.name}: {msg}')
        return self.meta

    def _topic_meta(self) -> dict:
        out = {}
        for topic, info in self._topics.items():
            stamps = self._stamps.get(topic)
            if stamps and all(stamps):
                times, source = stamps, 'header'
            else:
                times, source = self._recv.get(topic, []), 'receive'
            drops = self._drops.get(topic, 0)
            stats = topic_stats(times, self.expected_rates.get(topic),
                                estimate=source == 'header')
            if drops and (stats['lost'] or 0) < drops:  # drops are known losses
                stats.update(lost=drops, loss_fraction=drops / (drops + stats['count']))
            out[topic] = {'type': info['type'], 'time_source': source, **stats,
                          'drops': drops}
        for topic in self.meta['expected_topics']:
            if topic not in out:  # never discovered: no publisher, type unknown
                out[topic] = {'type': None, 'time_source': None,
                              **topic_stats([], self.expected_rates.get(topic)), 'drops': 0}
        return out


def _hz(value) -> str:
    return '-' if value is None else f'{value:.1f} Hz'

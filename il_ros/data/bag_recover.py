"""Recover what a killed recording's MCAP holds: ``il-ros bag-recover BAG``.

The recorder writes MCAP through rosbags, which keeps each chunk (about 1 MB of messages,
with the schema and channel records of the topics that started in it) in memory and
appends it to the file when it is full. A recorder killed mid-episode (SIGKILL, power loss)
leaves the file header and every chunk appended so far, but no summary, no footer and no
``metadata.yaml``: rosbags, ``ros2 bag`` and conversion refuse it (rosbags' MCAP reader
looks for the footer first). The records themselves are intact.

:func:`recover_bag` walks the records in file order, keeps every complete chunk (decoded,
size- and CRC-checked by rosbags' own chunk decoder), stops at the first truncated record,
and writes the messages as a new, finalized MCAP bag beside the original, named
``<bag>_recovered``; the original is never modified. The messages of the chunk that was
still in memory at the kill (up to about 1 MB per episode) are lost. The episode JSON
beside the bag is copied for the new bag with status ``incomplete`` and the recovery noted,
so conversion skips it unless ``--keep-incomplete`` is given. The new bag keeps the rosbag2
metadata version of the original (``bag_version`` in its episode JSON), else the recorder's
default, 8. sqlite3 bags are not recoverable this way (rosbags commits them only when the
episode stops).
"""
from __future__ import annotations

from io import BytesIO
import json
from pathlib import Path
import struct

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import decompress, get_qos
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from il_ros.data.bag_info import topic_stats
from il_ros.data.episode_writer import BAG_VERSIONS, DEFAULT_BAG_VERSION
from il_ros.data.episodes import read_episode_meta, STATUS_INCOMPLETE
from il_ros.fsio import atomic_write_json

MAGIC = b'\x89MCAP0\r\n'
SUFFIX = '_recovered'
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x03, 0x04, 0x05, 0x06


class RecoverError(RuntimeError):
    """Nothing could be recovered; the message names the file and why."""


def _string(rec: BytesIO) -> str:
    (n,) = struct.unpack('<I', rec.read(4))
    return rec.read(n).decode()


def _records(data: bytes):
    """(opcode, content) of each complete record in ``data``; stops at a truncated one.

    The last item is ``(None, offset)``: where the readable records end.
    """
    pos = 0
    while pos + 9 <= len(data):
        op, size = struct.unpack_from('<BQ', data, pos)
        if pos + 9 + size > len(data):
            break
        yield op, data[pos + 9:pos + 9 + size]
        pos += 9 + size
    yield None, pos


class _Scan:
    """Schemas, channels and messages found in the complete records of an MCAP file."""

    def __init__(self):
        self.schemas: dict[int, tuple[str, str]] = {}     # id -> (name, definition)
        self.channels: dict[int, tuple[str, int, list]] = {}  # id -> (topic, schema, qos)
        self.messages: list[tuple[int, int, bytes]] = []  # (channel, log time, data)
        self.chunks = 0

    def record(self, op: int, body: bytes) -> None:
        rec = BytesIO(body)
        if op == OP_SCHEMA:
            (sid,) = struct.unpack('<H', rec.read(2))
            name, _encoding = _string(rec), _string(rec)
            (n,) = struct.unpack('<I', rec.read(4))
            self.schemas[sid] = (name, rec.read(n).decode())
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack('<HH', rec.read(4))
            topic, _encoding = _string(rec), _string(rec)
            (n,) = struct.unpack('<I', rec.read(4))
            self.channels[cid] = (topic, sid, get_qos(rec.read(n)))
        elif op == OP_MESSAGE:
            cid, _seq, log_time, _pub = struct.unpack_from('<HIQQ', body)
            self.messages.append((cid, log_time, body[22:]))
        elif op == OP_CHUNK:
            _start, _end, size, crc = struct.unpack('<QQQI', rec.read(28))
            compression = _string(rec)
            (n,) = struct.unpack('<Q', rec.read(8))
            inner = decompress(rec.read(n), compression, size, crc)
            for op2, body2 in _records(inner):
                if op2 is not None:
                    self.record(op2, body2)
            self.chunks += 1


def recovered_path(bag: Path) -> Path:
    """Where :func:`recover_bag` writes the copy of ``bag``."""
    return bag.parent / f'{bag.name}{SUFFIX}'


def recover_bag(bag, out=None, bag_version=None) -> dict:
    """Copy the complete chunks of a killed MCAP bag into a new bag; return a report.

    ``bag``: the bag folder (or its ``.mcap`` file); ``out``: the new bag folder (default
    ``<bag>_recovered``; it must not exist). The report has ``out``, ``messages``,
    ``chunks``, ``topics`` (``{topic: count}``), ``unreadable_bytes`` (the tail after the
    last complete record), ``bag_version`` and ``meta`` (the new episode JSON, or None).
    ``bag_version`` (8 or 9): the new bag's metadata version; None keeps the original's
    (from its episode JSON), else :data:`il_ros.data.episode_writer.DEFAULT_BAG_VERSION`.

    Raises:
        FileNotFoundError: ``bag`` does not exist.
        RecoverError: not a recoverable MCAP, nothing in it, or ``out`` exists.
    """
    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f'{bag}: no such bag')
    if bag.is_file():
        bag = bag.parent
    files = sorted(bag.glob('*.mcap'))
    if len(files) != 1:
        what = 'sqlite3 bags commit only when the episode stops: nothing to recover' if any(
            bag.glob('*.db3')) else 'no single .mcap file in it'
        raise RecoverError(f'{bag}: {what}')
    out = Path(out) if out else recovered_path(bag)
    if out.exists():
        raise RecoverError(f'{out} exists; remove it or give another --out')
    data = files[0].read_bytes()
    if not data.startswith(MAGIC):
        raise RecoverError(f'{files[0]}: not an MCAP file (bad magic)')
    scan = _Scan()
    end = len(MAGIC)
    try:
        for op, body in _records(data[len(MAGIC):]):
            if op is None:
                end += body
            elif op in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK):
                scan.record(op, body)
    except Exception as err:  # a damaged record: keep what came before it
        raise RecoverError(f'{files[0]}: damaged record after {len(scan.messages)} '
                           f'messages ({type(err).__name__}: {err})') from None
    if not scan.messages:
        raise RecoverError(f'{files[0]}: no complete chunk (the recording was killed before '
                           'its first ~1 MB chunk was written)')
    meta = read_episode_meta(bag)
    if bag_version is None:
        bag_version = (meta or {}).get('bag_version', DEFAULT_BAG_VERSION)
    if bag_version not in BAG_VERSIONS:
        raise RecoverError(f'{bag}: bag_version must be one of {list(BAG_VERSIONS)}, '
                           f'got {bag_version!r}')
    topics = _write(out, scan, bag_version)
    report = {'bag': str(bag), 'out': str(out), 'messages': len(scan.messages),
              'chunks': scan.chunks, 'topics': {t: len(v[1]) for t, v in topics.items()},
              'unreadable_bytes': len(data) - end, 'bag_version': bag_version, 'meta': None}
    if meta is not None:
        report['meta'] = _recovered_meta(meta, bag, out, topics, scan.chunks, bag_version)
        atomic_write_json(out.parent / f'{out.name}.json', report['meta'])
    return report


def _write(out: Path, scan: _Scan, version: int) -> dict[str, tuple[str, list[int]]]:
    """Write the scanned messages as a finalized bag; ``{topic: (type, [log times])}``."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    writer = Writer(out, version=version, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns, times = {}, {}
    try:
        for cid, log_time, raw in sorted(scan.messages, key=lambda m: m[1]):
            if cid not in conns:
                topic, sid, qos = scan.channels[cid]
                msgtype, msgdef = scan.schemas[sid]
                if msgtype not in typestore.fielddefs:
                    typestore.register(get_types_from_msg(msgdef, msgtype))
                conns[cid] = writer.add_connection(topic, msgtype, typestore=typestore,
                                                   offered_qos_profiles=qos)
                times[topic] = (msgtype, [])
            writer.write(conns[cid], log_time, raw)
            times[scan.channels[cid][0]][1].append(log_time)
    finally:
        writer.close()
    return times


def _recovered_meta(meta: dict, bag: Path, out: Path, topics: dict, chunks: int,
                    version: int) -> dict:
    n = sum(len(v[1]) for v in topics.values())
    note = (f'recovered from {bag.name} (recorder killed mid-episode): {n} messages in '
            f'{chunks} complete chunk(s); the messages after the last complete chunk are lost')
    new = dict(meta, bag=out.name, status=STATUS_INCOMPLETE, recovered_from=str(bag),
               bag_version=version,
               warnings=[*meta.get('warnings', []), note],
               error=meta.get('error') or 'recorder killed mid-episode; partly recovered')
    new['topics'] = {t: {'type': msgtype, 'time_source': 'receive', **topic_stats(v)}
                     for t, (msgtype, v) in sorted(topics.items())}
    return json.loads(json.dumps(new, default=str))

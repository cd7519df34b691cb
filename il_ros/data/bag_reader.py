"""Read the role topics of one rosbag2 bag (MCAP or sqlite3) with rosbags.

Two passes keep memory flat for long, high-resolution episodes:

1. ``BagFile.read_streams`` reads every role message once. Joint states, actions and control
   sources are decoded into arrays and labels (JointState by a direct CDR parse, rosbags as
   the fallback); images are *not* deserialized: their CDR header is parsed by hand for the
   stamp, size and encoding. A bag under ``keep_images_bytes`` keeps the image bytes.
2. ``BagFile.images`` decodes only the frames the resampler picked (Image rgb8/bgr8/mono8/
   rgba8/bgra8, or CompressedImage jpeg/png) and fits them to the dataset size with
   :mod:`il_ros.images` (the controller's pipeline), re-reading the bag only when pass 1
   kept no bytes.

Every problem is raised as BagError naming the file, the topic and the time.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from il_ros.data.episodes import recorded_namespace
from il_ros.data.topic_map import ConvertConfig
from il_ros.images import decode_message, fit, ImageError, Preprocess

_DEFAULT_TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


class BagError(Exception):
    """A bag cannot be converted; the message says which file, topic and time."""


@dataclass
class Stream:
    """One topic's messages: receive times, header stamps (or None) and payloads."""

    topic: str
    msgtype: str
    receive: np.ndarray            # (N,) s, the bag's log time
    stamps: np.ndarray | None      # (N,) s, header stamps; None for types without a header
    items: list                    # arrays (joints, action), str (source), signature (image)


@dataclass
class BagData:
    """The role streams of one bag ('camera/<name>', 'joints', 'action', 'source')."""

    streams: dict[str, Stream]
    joint_names: list[str]
    warnings: list[str] = field(default_factory=list)


def _cdr_u32(raw, pos: int) -> int:
    return int.from_bytes(raw[4 + pos:8 + pos], 'little')


def _cdr_string(raw, pos: int) -> tuple[str, int]:
    """The CDR string at payload offset ``pos`` (aligned to 4) and the offset after it."""
    pos = (pos + 3) & ~3
    n = _cdr_u32(raw, pos)
    text = bytes(raw[8 + pos:8 + pos + max(n - 1, 0)]).decode('utf-8', 'replace')
    return text, pos + 4 + n


def image_header(raw, compressed: bool) -> tuple[float, tuple]:
    """(header stamp, signature) of a little-endian CDR Image/CompressedImage, pixels unread.

    The signature is what must stay constant over an episode: ('raw', height, width,
    encoding) or ('compressed', format).
    """
    if len(raw) < 16 or raw[1] != 1:
        raise ValueError('not a little-endian CDR message')
    stamp = (int.from_bytes(raw[4:8], 'little', signed=True)
             + int.from_bytes(raw[8:12], 'little') * 1e-9)
    _, pos = _cdr_string(raw, 8)                     # header.frame_id
    if compressed:
        fmt, _ = _cdr_string(raw, pos)
        return stamp, ('compressed', fmt.split(';')[0].strip())
    pos = (pos + 3) & ~3
    height, width = _cdr_u32(raw, pos), _cdr_u32(raw, pos + 4)
    encoding, _ = _cdr_string(raw, pos + 8)
    return stamp, ('raw', height, width, encoding)


def _align(pos: int, n: int) -> int:
    return (pos + n - 1) & ~(n - 1)


def joint_state_fast(raw) -> tuple[float, bytes, np.ndarray] | None:
    """Parse a little-endian CDR JointState partly, without a full deserialization.

    Returns (header stamp, raw bytes of the name sequence, positions), or None when the
    layout is unexpected (the caller then falls back to rosbags).
    """
    if len(raw) < 16 or raw[1] != 1:
        return None
    try:
        stamp = (int.from_bytes(raw[4:8], 'little', signed=True)
                 + int.from_bytes(raw[8:12], 'little') * 1e-9)
        _, pos = _cdr_string(raw, 8)                      # header.frame_id
        names_start = pos = _align(pos, 4)
        count = _cdr_u32(raw, pos)
        pos += 4
        for _ in range(count):
            pos = _align(pos, 4)
            pos += 4 + _cdr_u32(raw, pos)
        names = bytes(raw[4 + names_start:4 + pos])
        pos = _align(pos, 4)
        n_pos = _cdr_u32(raw, pos)
        start = 4 + _align(pos + 4, 8) if n_pos else 4 + pos + 4
        if start + 8 * n_pos > len(raw):
            return None
        return stamp, names, np.frombuffer(raw, '<f8', n_pos, start)
    except (ValueError, IndexError):
        return None


def _header_stamp(msg) -> float | None:
    header = getattr(msg, 'header', None)
    if header is None:
        return None
    return header.stamp.sec + header.stamp.nanosec * 1e-9


ACTION_KINDS = {'std_msgs/msg/Float64MultiArray': 'float64_multi_array',
                'sensor_msgs/msg/JointState': 'joint_state',
                'trajectory_msgs/msg/JointTrajectory': 'joint_trajectory',
                'geometry_msgs/msg/TwistStamped': 'twist_stamped'}
"""Action layout of each command message type (the bag names the type of every topic)."""


def _action_vector(msg, kind: str, joints: list[str], where: str) -> np.ndarray:
    """The action vector of one command message."""
    if kind == 'float64_multi_array':
        return np.asarray(msg.data, np.float64)
    if kind == 'twist_stamped':
        tw = msg.twist
        return np.array([tw.linear.x, tw.linear.y, tw.linear.z,
                         tw.angular.x, tw.angular.y, tw.angular.z])
    if kind == 'joint_state':
        names, values = list(msg.name), np.asarray(msg.position, np.float64)
    else:  # joint_trajectory: its first point is the command
        if not len(msg.points):
            raise BagError(f'{where}: JointTrajectory without points')
        names, values = list(msg.joint_names), np.asarray(msg.points[0].positions, np.float64)
    if not joints:
        return values
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in joints if j not in index]
    if missing:
        raise BagError(f'{where}: action joints {missing} missing from {names}')
    return values[[index[j] for j in joints]]


class BagFile:
    """One bag opened for conversion. Use as a context manager."""

    def __init__(self, path: Path, cfg: ConvertConfig, keep_images_bytes: int = 512 << 20):
        self.path = Path(path)
        self.cfg = cfg
        self.namespace = cfg.namespace or recorded_namespace(self.path) or '/'
        tm = cfg.topics.resolved(self.namespace)     # the bag stores resolved names
        self.roles = {f'camera/{n}': t for n, t in tm.cameras.items()}
        self.roles['joints'] = tm.joint_states.topic
        self.roles['action'] = tm.action.topic
        if tm.control_source:
            self.roles['source'] = tm.control_source
        self.padded: dict[str, int] = {}
        self.reader = None
        self.raw_images: dict[str, list] = {}
        self.keep_images_bytes = keep_images_bytes

    def __enter__(self):
        try:
            # Every role type is a standard message, so the Kilted typestore serves; that
            # skips building one from the bag's own definitions (AnyReader).
            self.reader = Reader(self.path)
            self.reader.open()
        except Exception as e:  # noqa: BLE001 - any failure to open is reported alike
            raise BagError(f'{self.path}: cannot open bag (truncated or corrupt?): '
                           f'{e}') from None
        self.conns = {c.topic: c for c in self.reader.connections}
        return self

    def __exit__(self, *exc):
        self.reader.close()

    def _deserialize(self, raw, msgtype: str):
        """Deserialize CDR, tolerating trailing padding (rclpy pads some JointStates)."""
        ts = _DEFAULT_TYPESTORE
        try:
            return ts.deserialize_cdr(raw, msgtype)
        except Exception as first:  # noqa: BLE001 - only the size check is tolerated
            if 'size mismatch' not in str(first):
                raise
        msgdef = ts.get_msgdef(msgtype)
        func = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
        msg, _ = func(raw[4:], 0, msgdef.cls, ts)
        self.padded[msgtype] = self.padded.get(msgtype, 0) + 1
        return msg

    def read_streams(self) -> BagData:
        """Pass 1: every role message (images by header only)."""
        missing = [(r, t) for r, t in self.roles.items()
                   if t not in self.conns and r != 'source']
        if missing:
            raise BagError(f'{self.path}: missing topic(s) '
                           + ', '.join(f'{t} ({r})' for r, t in missing)
                           + f'; the bag has {sorted(self.conns)}')
        topic_role = {t: r for r, t in self.roles.items() if t in self.conns}
        bag_bytes = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        keep_raw = bag_bytes <= self.keep_images_bytes  # else images are re-read in pass 2
        self.raw_images = {}
        for topic, role in topic_role.items():
            if role.startswith('camera/') and self.conns[topic].msgtype not in IMAGE_TYPES:
                raise BagError(f'{self.path}: {topic} is {self.conns[topic].msgtype}, '
                               f'not one of {IMAGE_TYPES}')
        cols = {r: ([], [], []) for r in topic_role.values()}
        state = {'names': None, 'keep': list(self.cfg.topics.joint_states.joints),
                 'names_raw': None, 'index': None}
        try:
            for conn, t_ns, raw in self.reader.messages(
                    connections=[self.conns[t] for t in topic_role]):
                role = topic_role[conn.topic]
                recv, stamps, items = cols[role]
                where = f'{self.path}: {conn.topic} at t={t_ns * 1e-9:.3f}s'
                recv.append(t_ns * 1e-9)
                if role.startswith('camera/'):
                    stamp, sig = image_header(raw, conn.msgtype.endswith('CompressedImage'))
                    stamps.append(stamp)
                    items.append(sig)
                    if keep_raw:
                        self.raw_images.setdefault(role, []).append(raw)
                    continue
                if role == 'joints' and conn.msgtype == 'sensor_msgs/msg/JointState':
                    fast = joint_state_fast(raw)
                    if fast is not None and fast[1] == state['names_raw']:
                        stamps.append(fast[0])  # same names as before: positions in place
                        pos = fast[2]
                        if pos.size != len(state['names']):
                            raise BagError(f'{where}: {len(state["names"])} joint names but '
                                           f'{pos.size} positions')
                        items.append(pos[state['index']])
                        continue
                msg = self._deserialize(raw, conn.msgtype)
                stamps.append(_header_stamp(msg))
                if role == 'joints':
                    items.append(self._joint_positions(msg, state, where))
                    fast = joint_state_fast(raw)
                    state['names_raw'] = fast[1] if fast is not None else None
                elif role == 'action':
                    a = self.cfg.topics.action
                    kind = ACTION_KINDS.get(conn.msgtype, a.type)
                    items.append(_action_vector(msg, kind, a.joints if kind in (
                        'joint_state', 'joint_trajectory') else [], where))
                else:
                    items.append(str(msg.data))
        except BagError:
            raise
        except Exception as e:  # noqa: BLE001 - rosbags raises many kinds on damaged files
            raise BagError(f'{self.path}: read failed (truncated or corrupt?): {e}') from None
        warnings = [f'{n} {t} message(s) had trailing CDR padding (ignored)'
                    for t, n in self.padded.items()]
        streams = {}
        for topic, role in topic_role.items():
            recv, stamps, items = cols[role]
            has_header = bool(stamps) and stamps[0] is not None
            streams[role] = Stream(topic, self.conns[topic].msgtype, np.asarray(recv),
                                   np.asarray(stamps, np.float64) if has_header else None,
                                   items)
        return BagData(streams, state['keep'], warnings)

    @staticmethod
    def _joint_positions(msg, state: dict, where: str) -> np.ndarray:
        names = list(msg.name)
        if state['names'] is None:
            state['names'] = names
            state['keep'] = state['keep'] or names
        elif set(names) != set(state['names']):
            raise BagError(f'{where}: joint name set changed from {state["names"]} to {names}')
        index = {n: i for i, n in enumerate(names)}
        lost = [j for j in state['keep'] if j not in index]
        if lost:
            raise BagError(f'{where}: joints {lost} not in JointState names {names}')
        pos = np.asarray(msg.position, np.float64)
        if pos.size != len(names):
            raise BagError(f'{where}: {len(names)} joint names but {pos.size} positions')
        state['names'] = names  # the order the fast path's names_raw stands for
        state['index'] = [index[j] for j in state['keep']]
        return pos[state['index']]

    def images(self, role: str, indices: np.ndarray) -> np.ndarray:
        """Pass 2: (len(indices), H, W, 3) uint8 frames of a camera role, by message index."""
        conn = self.conns[self.roles[role]]
        preprocess = conversion_preprocess(self.cfg)
        wanted = np.unique(indices)
        jobs = {}
        k = 0
        # Decoding and resizing run in threads (OpenCV releases the GIL) while the bag is
        # read on this one.
        kept = self.raw_images.get(role)
        source = (enumerate((None, raw) for raw in kept) if kept is not None
                  else enumerate((t, raw) for _, t, raw in
                                 self.reader.messages(connections=[conn])))
        with ThreadPoolExecutor(max_workers=2) as pool:
            for i, (t_ns, raw) in source:
                if k >= wanted.size:
                    break
                if i != wanted[k]:
                    continue
                where = f'{self.path}: {conn.topic} (message {i})'
                jobs[i] = pool.submit(image_pixels, self._deserialize(raw, conn.msgtype),
                                      preprocess, where)
                k += 1
            decoded = {i: job.result() for i, job in jobs.items()}
        return np.stack([decoded[i] for i in indices])  # (T, H, W, 3)


def image_pixels(msg, preprocess: Preprocess, where: str) -> np.ndarray:
    """The policy input of an Image or CompressedImage message (:mod:`il_ros.images`)."""
    try:
        return fit(decode_message(msg), preprocess)
    except ImageError as e:
        raise BagError(f'{where}: {e}') from None


def conversion_preprocess(cfg: ConvertConfig) -> Preprocess:
    """The image preprocessing of a conversion (recorded in every episode's meta)."""
    return Preprocess(size=cfg.image_size)

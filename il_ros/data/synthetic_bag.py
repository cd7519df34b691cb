"""Write rosbag2 bags "from someone else's robot", with rosbags alone (no ROS, no il_ros nodes).

Tests and benchmarks use these to exercise conversion on bags the package did not record:
other topic names, jittered timing, camera gaps, compressed images, shuffled joint order,
NaNs. Every value is a known function of time, so a test can check what conversion produced:

- joint ``j`` (canonical order) at time t: ``sin(t + j)``;
- action at time t: ``[cos(t + a) for a in range(action_dim)]``;
- image at time t: a uniform grey of value ``int(t * 10) % 200 + 20`` plus a white square
  whose column encodes the camera index (big enough to survive jpeg).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from il_ros import keys
from il_ros.data.episode_writer import DEFAULT_BAG_VERSION

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_T = TYPESTORE.types


@dataclass
class SyntheticBagSpec:
    """What to write. Topic names default to the package's graph."""

    duration: float = 3.0
    cameras: dict[str, str] = field(default_factory=lambda: {
        'front': '/camera/front/image_raw'})
    compressed: tuple[str, ...] = ()            # camera names published as CompressedImage
    camera_hz: float = 30.0
    image_hw: tuple[int, int] = (48, 64)
    encoding: str = 'rgb8'
    joint_states_topic: str = '/joint_states'
    joint_names: tuple[str, ...] = ('j0', 'j1', 'j2')
    shuffle_joints: bool = False                # publish names in a shuffled order
    joint_hz: float = 100.0
    action_topic: str = '/il/command'
    action_dim: int = 3
    action_hz: float = 20.0
    jitter: float = 0.0                         # +- fraction of the period, uniform
    camera_gap: tuple[float, float] | None = None   # (start, end) s without camera 0
    action_gap: tuple[float, float] | None = None   # (start, end) s without actions (and
                                                    # control sources, sent with them)
    nan_joint_at: float | None = None           # a NaN position at this time
    backwards_stamp_at: float | None = None     # a joint stamp 0.2 s in the past here
    resize_camera_at: float | None = None       # camera 0 halves its height from here on
    rename_joint_at: float | None = None        # joint 0 is renamed from here on
    zero_stamps: bool = False                   # drivers that never stamp headers
    stamp_offset: float = 0.0                   # header clock minus receive clock
    start: float = 1000.0                       # receive time of the first message
    storage: str = 'mcap'
    bag_version: int = DEFAULT_BAG_VERSION      # rosbag2 metadata version: 8 or 9
    seed: int = 0
    control_source: tuple = ()                  # ((from_s, 'policy'), (1.0, 'intervention'),
                                                # ...): std_msgs/String at action_hz
    control_source_topic: str = '/il/control_source'


def joint_value(t, j):
    """Return joint ``j``'s position at time ``t`` in a synthetic bag."""
    return np.sin(t + j)


def action_value(t, dim):
    """Return the ``dim``-vector action at time ``t`` in a synthetic bag."""
    return np.cos(t + np.arange(dim))


def image_value(t, hw, cam_index=0):
    """The (H, W, 3) uint8 frame a camera shows at time t."""
    img = np.full((*hw, 3), int(t * 10) % 200 + 20, np.uint8)
    s = hw[0] // 4
    img[s:2 * s, (cam_index + 1) * s:(cam_index + 2) * s] = 255
    return img


def _header(t_stamp, frame=''):
    sec = int(np.floor(t_stamp))
    return _T['std_msgs/msg/Header'](
        stamp=_T['builtin_interfaces/msg/Time'](sec=sec, nanosec=int((t_stamp - sec) * 1e9)),
        frame_id=frame)


def _times(rng, hz, spec) -> np.ndarray:
    n = int(spec.duration * hz)
    t = spec.start + np.arange(n) / hz
    if spec.jitter:
        t = t + rng.uniform(-spec.jitter, spec.jitter, n) / hz
    return t


def write_synthetic_bag(path: str | Path, spec: SyntheticBagSpec | None = None) -> Path:
    """Write one bag folder at ``path``; returns it."""
    import cv2
    spec = spec or SyntheticBagSpec()
    rng = np.random.default_rng(spec.seed)
    path = Path(path)
    plugin = StoragePlugin.MCAP if spec.storage == 'mcap' else StoragePlugin.SQLITE3
    events = []  # (receive time, order, connection key, message)
    for ci, (cam, topic) in enumerate(spec.cameras.items()):
        for t in _times(rng, spec.camera_hz, spec):
            if ci == 0 and spec.camera_gap and spec.start + spec.camera_gap[0] <= t < \
                    spec.start + spec.camera_gap[1]:
                continue
            img = image_value(t - spec.start, spec.image_hw, ci)
            if ci == 0 and spec.resize_camera_at is not None and \
                    t - spec.start >= spec.resize_camera_at:
                img = img[:img.shape[0] // 2]
            stamp = 0.0 if spec.zero_stamps else t + spec.stamp_offset
            if cam in spec.compressed:
                ok, buf = cv2.imencode('.jpg', img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                msg = _T['sensor_msgs/msg/CompressedImage'](
                    header=_header(stamp, cam), format='rgb8; jpeg compressed bgr8',
                    data=np.frombuffer(buf.tobytes(), np.uint8))
                events.append((t, 0, (topic, 'sensor_msgs/msg/CompressedImage'), msg))
                continue
            if spec.encoding == 'bgr8':
                img = img[..., ::-1]
            elif spec.encoding == 'mono8':
                img = img[..., :1]
            h, w, ch = img.shape
            msg = _T['sensor_msgs/msg/Image'](
                header=_header(stamp, cam), height=h, width=w, encoding=spec.encoding,
                is_bigendian=0, step=w * ch, data=np.ascontiguousarray(img).reshape(-1))
            events.append((t, 0, (topic, 'sensor_msgs/msg/Image'), msg))
    order = list(range(len(spec.joint_names)))
    if spec.shuffle_joints:
        rng.shuffle(order)
    for t in _times(rng, spec.joint_hz, spec):
        te = t - spec.start
        pos = np.array([joint_value(te, j) for j in order])
        if spec.nan_joint_at is not None and abs(te - spec.nan_joint_at) < 0.5 / spec.joint_hz:
            pos[0] = np.nan
        stamp = 0.0 if spec.zero_stamps else t + spec.stamp_offset
        if spec.backwards_stamp_at is not None and \
                abs(te - spec.backwards_stamp_at) < 0.5 / spec.joint_hz:
            stamp -= 0.2
        names = [spec.joint_names[j] for j in order]
        if spec.rename_joint_at is not None and te >= spec.rename_joint_at:
            names = [n + '_renamed' if n == spec.joint_names[0] else n for n in names]
        msg = _T['sensor_msgs/msg/JointState'](
            header=_header(stamp), name=names, position=pos,
            velocity=np.zeros(len(order)), effort=np.zeros(len(order)))
        events.append((t, 1, (spec.joint_states_topic, 'sensor_msgs/msg/JointState'), msg))
    for t in _times(rng, spec.action_hz, spec):
        if spec.action_gap and spec.start + spec.action_gap[0] <= t < \
                spec.start + spec.action_gap[1]:
            continue
        msg = _T['std_msgs/msg/Float64MultiArray'](
            layout=_T['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
            data=action_value(t - spec.start, spec.action_dim))
        events.append((t, 2, (spec.action_topic, 'std_msgs/msg/Float64MultiArray'), msg))
        if spec.control_source:
            te = t - spec.start
            src = [s for t0, s in spec.control_source if t0 <= te + 1e-9]
            events.append((t, 3, (spec.control_source_topic, 'std_msgs/msg/String'),
                           _T['std_msgs/msg/String'](data=src[-1] if src else 'hold')))
    events.sort(key=lambda e: (e[0], e[1]))
    with Writer(path, version=spec.bag_version, storage_plugin=plugin) as writer:
        conns = {}
        for _, _, key, _ in events:
            if key not in conns:
                # a bag stores resolved names: a relative one as a node in no namespace has it
                conns[key] = writer.add_connection(keys.resolve_name(key[0]), key[1],
                                                   typestore=TYPESTORE)
        for t, _, key, msg in events:
            writer.write(conns[key], int(round(t * 1e9)),
                         TYPESTORE.serialize_cdr(msg, key[1]))
    return path

"""Message <-> numpy conversions. Pure functions, no node state."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


def to_time(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds."""
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def image_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    """sensor_msgs/Image (rgb8) from an (H, W, 3) uint8 array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}')
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def image_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image (rgb8, bgr8, mono8, rgba8, bgra8) or CompressedImage."""
    import cv2
    if isinstance(msg, CompressedImage):
        bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'cannot decode CompressedImage with format {msg.format!r}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    ch = _CHANNELS.get(msg.encoding)
    if ch is None:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}; '
                         f'supported: {sorted(_CHANNELS)}')
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    if buf.size < msg.step * msg.height:
        raise ValueError(f'image data has {buf.size} bytes, expected {msg.step * msg.height}')
    img = buf[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :msg.width * ch]
    img = img.reshape(msg.height, msg.width, ch)
    if msg.encoding == 'mono8':
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        img = img[..., 2::-1]
    return np.ascontiguousarray(img[..., :3])


def joint_state_msg(names, pos, vel, effort, stamp: float) -> JointState:
    """sensor_msgs/JointState with all three arrays filled (rosbags needs no empty tail)."""
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = [float(x) for x in pos]
    msg.velocity = [float(x) for x in vel]
    msg.effort = [float(x) for x in effort]
    return msg


def array_msg(values, label: str = '') -> Float64MultiArray:
    """std_msgs/Float64MultiArray with one labelled dimension."""
    values = np.asarray(values, np.float64).ravel()
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=label, size=values.size, stride=values.size)]
    msg.data = values.tolist()
    return msg


def array_from_msg(msg: Float64MultiArray) -> np.ndarray:
    """float64 array from std_msgs/Float64MultiArray."""
    return np.asarray(msg.data, np.float64)

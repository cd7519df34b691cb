"""Message <-> numpy conversions. Pure functions, no node state."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from il_ros.images import (decode_message, encode_compressed, encode_raw, ImageError,
                           JPEG_QUALITY)


def to_time(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds."""
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def image_msg(rgb: np.ndarray, stamp: float, frame_id: str, encoding: str = 'rgb8') -> Image:
    """sensor_msgs/Image in ``encoding`` (rgb8, bgr8, mono8, rgba8, bgra8) of (H, W, 3) RGB."""
    try:
        data, step = encode_raw(rgb, encoding)
    except ImageError as e:
        raise ValueError(str(e)) from None
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = data
    return msg


def compressed_image_msg(rgb: np.ndarray, stamp: float, frame_id: str, fmt: str = 'jpeg',
                         quality: int = JPEG_QUALITY) -> CompressedImage:
    """sensor_msgs/CompressedImage (jpeg or png) of an (H, W, 3) uint8 RGB array."""
    try:
        data = encode_compressed(rgb, fmt, quality)
    except ImageError as e:
        raise ValueError(str(e)) from None
    msg = CompressedImage()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = data
    return msg


def camera_msg(rgb: np.ndarray, stamp: float, frame_id: str, camera) -> Image | CompressedImage:
    """The message a robot description's ``camera`` (il_ros.robot.Camera) publishes."""
    if camera.compressed:
        return compressed_image_msg(rgb, stamp, frame_id, camera.encoding)
    return image_msg(rgb, stamp, frame_id, camera.encoding)


def image_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image or CompressedImage (:func:`il_ros.images.decode_message`).

    Raises ImageError (a ValueError) naming what is wrong.
    """
    return decode_message(msg)


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

"""The image pipeline: camera message fields -> the policy's (H, W, 3) uint8 RGB input.

One module for every path that feeds a policy, so they cannot drift apart: conversion
(:mod:`il_ros.data.bag_reader`), the controller (:mod:`il_ros.ros.observation` through
:mod:`il_ros.ros.conversions`) and in-process evaluation (:mod:`il_ros.sim.camera_feed`).
ROS-free: it takes the fields of a ``sensor_msgs/Image`` (encoding, height, width, step,
data) or a ``sensor_msgs/CompressedImage`` (format, data), from rclpy or rosbags alike.

- :func:`decode_raw` / :func:`decode_compressed` / :func:`decode_message`: every encoding of
  :data:`~il_ros.robot.IMAGE_ENCODINGS` and format of
  :data:`~il_ros.robot.COMPRESSED_FORMATS` to RGB (mono8 repeated into three channels, the
  alpha channel dropped), or :class:`ImageError` saying what is wrong;
- :class:`Preprocess` and :func:`fit`: centre-crop to the policy's aspect ratio, then resize
  with the area filter. A dataset records the preprocessing it was converted with, a
  checkpoint carries it, and the controller and evaluation apply the checkpoint's;
- :func:`encode_raw` / :func:`encode_compressed`: the inverse, for publishers (``sim_robot``)
  and for in-process evaluation, which sends each rendered frame through its camera's
  encoding (:func:`as_received`) so that it sees what the controller would.

OpenCV is imported on first use (it is slow to import; an rgb8 image at the policy's size
needs none of it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from il_ros.robot import COMPRESSED_FORMATS, IMAGE_ENCODINGS

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
"""Bytes per pixel of each ``sensor_msgs/Image`` encoding (the set is
:data:`il_ros.robot.IMAGE_ENCODINGS`)."""
COLOR_ENCODINGS = tuple(e for e in IMAGE_ENCODINGS if CHANNELS[e] >= 3)
"""Raw encodings that carry colour. A grey image (mono8) replicated into three channels is
not what a policy trained on colour images has seen: the controller refuses mono8 from a
camera the robot description declares in colour (and colour from a declared mono8 one)."""
JPEG_QUALITY = 90
"""JPEG quality (0-100) of every JPEG this package writes: the sim robot's compressed
cameras and in-process evaluation, which must match them byte for byte."""
CROPS = ('center', 'none')
"""``center``: crop the middle to the target aspect ratio before resizing; ``none``: resize
the whole image (distorts it when the aspect ratios differ)."""
INTERPOLATIONS = ('area', 'linear', 'cubic', 'nearest')
"""Resize filters (OpenCV's INTER_AREA, INTER_LINEAR, INTER_CUBIC, INTER_NEAREST)."""


class ImageError(ValueError):
    """An image cannot be decoded or encoded; the message says which field is wrong."""


@dataclass(frozen=True)
class Preprocess:
    """How a camera image becomes the policy's input (a checkpoint without one: defaults)."""

    size: tuple[int, int] = (84, 84)
    """(H, W) of the policy's images."""
    crop: str = 'center'
    """One of :data:`CROPS`."""
    interpolation: str = 'area'
    """One of :data:`INTERPOLATIONS`."""

    def __post_init__(self):
        size = tuple(int(s) for s in self.size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f'preprocess size is (H, W) with positive ints, got {self.size}')
        object.__setattr__(self, 'size', size)
        if self.crop not in CROPS:
            raise ValueError(f'preprocess crop {self.crop!r} is not one of {CROPS}')
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f'preprocess interpolation {self.interpolation!r} is not one of '
                             f'{INTERPOLATIONS}')

    def to_dict(self) -> dict:
        """JSON-able form (what a dataset's episode meta and a checkpoint store)."""
        return {'size': list(self.size), 'crop': self.crop,
                'interpolation': self.interpolation}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """Inverse of :meth:`to_dict`; unknown keys or values raise ValueError naming them."""
        if not isinstance(d, dict):
            raise ValueError(f'preprocess: expected a mapping, got {type(d).__name__}')
        unknown = sorted(set(d) - {'size', 'crop', 'interpolation'})
        if unknown:
            raise ValueError(f'preprocess: unknown key(s) {unknown}')
        if 'size' not in d:
            raise ValueError('preprocess: missing size')
        return cls(**d)


def preprocess_of(policy) -> Preprocess | None:
    """The preprocessing a policy's images need.

    Its ``preprocess`` attribute (set when it is loaded from a checkpoint or built by the
    trainer), else the default at its ``spec.image_size``; None for an object with neither
    (a scripted act function).
    """
    pre = getattr(policy, 'preprocess', None)
    if pre is not None:
        return pre
    size = getattr(getattr(policy, 'spec', None), 'image_size', None)
    return Preprocess(size=tuple(size)) if size and min(size) > 0 else None


def common_preprocess(records: list, size) -> Preprocess:
    """The one preprocessing of several episodes' records; ValueError when they differ.

    A record ``None`` (an episode converted before datasets recorded it) is the default at
    ``size``.
    """
    found = {}
    for i, rec in enumerate(records):
        pre = Preprocess.from_dict(rec) if rec is not None else Preprocess(size=tuple(size))
        if pre.size != tuple(size):
            raise ValueError(f'episode {i} was converted to {list(pre.size)} images but '
                             f'stores {list(size)}')
        found.setdefault(pre, []).append(i)
    if len(found) > 1:
        raise ValueError('episodes were converted with different image preprocessing: '
                         + '; '.join(f'{p.to_dict()} (episodes {eps[:5]})'
                                     for p, eps in found.items()))
    return next(iter(found)) if found else Preprocess(size=tuple(size))


# ---- decode --------------------------------------------------------------------------------
def _to_rgb(img: np.ndarray, encoding: str) -> np.ndarray:
    """A new RGB array of a non-rgb8 image (OpenCV shuffles channels 3x faster than numpy)."""
    import cv2
    code = {'bgr8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_GRAY2RGB,
            'rgba8': cv2.COLOR_RGBA2RGB, 'bgra8': cv2.COLOR_BGRA2RGB}[encoding]
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def decode_raw(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """(H, W, 3) uint8 RGB from the fields of a ``sensor_msgs/Image``.

    ``data``: bytes, a bytearray, an array.array (rclpy), a memoryview or a uint8 array
    (rosbags). Rows may be padded (``step`` > width * bytes per pixel); the padding is
    dropped. The result is a new, writable array.
    """
    ch = CHANNELS.get(encoding)
    if ch is None:
        raise ImageError(f'unsupported image encoding {encoding!r}; supported: '
                         f'{", ".join(IMAGE_ENCODINGS)}')
    height, width, step = int(height), int(width), int(step)
    if height < 1 or width < 1:
        raise ImageError(f'image is {width}x{height} (WxH): empty')
    if step < width * ch:
        raise ImageError(f'step {step} is shorter than a {encoding} row of {width} px '
                         f'({width * ch} bytes)')
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    buf = buf.reshape(-1).view(np.uint8)
    if buf.size < step * height:
        raise ImageError(f'image data has {buf.size} bytes, {width}x{height} {encoding} with '
                         f'step {step} needs {step * height}')
    img = buf[:step * height].reshape(height, step)[:, :width * ch].reshape(height, width, ch)
    if encoding == 'rgb8':
        return img.copy()                 # never a view of the message's buffer
    return _to_rgb(img, encoding)


def compressed_kind(fmt: str) -> str | None:
    """'jpeg' or 'png' from a CompressedImage ``format``, or None when it names neither.

    ``format`` is 'jpeg', 'png' or image_transport's 'rgb8; jpeg compressed bgr8'...; when
    it names neither, the decoder goes by the bytes.
    """
    words = fmt.lower().replace(';', ' ').split()
    if 'jpeg' in words or 'jpg' in words:
        return 'jpeg'
    if 'png' in words:
        return 'png'
    return None


def decode_compressed(fmt: str, data) -> np.ndarray:
    """(H, W, 3) uint8 RGB from the fields of a ``sensor_msgs/CompressedImage``."""
    import cv2
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    buf = buf.reshape(-1).view(np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise ImageError(f'cannot decode CompressedImage with format {fmt!r} ({buf.size} '
                         f'bytes): not a complete {compressed_kind(fmt) or "JPEG or PNG"} '
                         f'image')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_message(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image or CompressedImage message (rclpy or rosbags)."""
    if hasattr(msg, 'format'):
        return decode_compressed(msg.format, msg.data)
    data = msg.data
    if isinstance(data, (list, tuple)):      # a hand-built message with a list of ints
        data = np.asarray(data, np.uint8)
    return decode_raw(msg.encoding, msg.height, msg.width, msg.step, data)


# ---- fit -----------------------------------------------------------------------------------
def _cv2_interpolation(name: str) -> int:
    import cv2
    return {'area': cv2.INTER_AREA, 'linear': cv2.INTER_LINEAR, 'cubic': cv2.INTER_CUBIC,
            'nearest': cv2.INTER_NEAREST}[name]


def crop_box(h: int, w: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred crop of an h x w image to ``size``'s aspect."""
    th, tw = size
    if h * tw > w * th:        # too tall: crop rows
        keep = round(w * th / tw)
        return (h - keep) // 2, 0, keep, w
    if h * tw < w * th:        # too wide: crop columns
        keep = round(h * tw / th)
        return 0, (w - keep) // 2, h, keep
    return 0, 0, h, w


def fit(rgb: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """The policy's (H, W, 3) uint8 image from any size of (h, w, 3) uint8 RGB.

    An image already at the size is returned as is (contiguous); otherwise it is cropped
    (``preprocess.crop``) and resized with ``preprocess.interpolation``.
    """
    import cv2
    h, w = rgb.shape[:2]
    th, tw = preprocess.size
    if (h, w) == (th, tw):
        return np.ascontiguousarray(rgb)
    if preprocess.crop == 'center':
        top, left, ch, cw = crop_box(h, w, (th, tw))
        rgb = rgb[top:top + ch, left:left + cw]
    return cv2.resize(np.ascontiguousarray(rgb), (tw, th),
                      interpolation=_cv2_interpolation(preprocess.interpolation))


# ---- encode --------------------------------------------------------------------------------
def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3:
        raise ImageError(f'expected an (H, W, 3) uint8 RGB image, got '
                         f'{getattr(rgb, "shape", None)} {getattr(rgb, "dtype", type(rgb))}')
    return rgb


def encode_raw(rgb: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """``(data, step)`` of a ``sensor_msgs/Image`` in ``encoding`` holding ``rgb``.

    Rows are not padded (step = width * bytes per pixel). mono8 is the ITU-R 601 luma
    (OpenCV's RGB2GRAY); rgba8/bgra8 get an opaque alpha channel.
    """
    rgb = _check_rgb(rgb)
    ch = CHANNELS.get(encoding)
    if ch is None:
        raise ImageError(f'unsupported image encoding {encoding!r}; supported: '
                         f'{", ".join(IMAGE_ENCODINGS)}')
    if encoding == 'rgb8':
        return np.ascontiguousarray(rgb).tobytes(), rgb.shape[1] * ch
    import cv2
    code = {'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY,
            'rgba8': cv2.COLOR_RGB2RGBA, 'bgra8': cv2.COLOR_RGB2BGRA}[encoding]
    return cv2.cvtColor(np.ascontiguousarray(rgb), code).tobytes(), rgb.shape[1] * ch


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg',
                      quality: int = JPEG_QUALITY) -> bytes:
    """The bytes of a ``sensor_msgs/CompressedImage`` of ``fmt`` (jpeg or png) of ``rgb``.

    ``quality``: JPEG quality 0-100 (ignored for png).
    """
    import cv2
    rgb = _check_rgb(rgb)
    if fmt not in COMPRESSED_FORMATS:
        raise ImageError(f'unsupported compressed format {fmt!r}; supported: '
                         f'{", ".join(COMPRESSED_FORMATS)}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png',
                           cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f'OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} {fmt}')
    return buf.tobytes()


def as_received(rgb: np.ndarray, encoding: str, compressed: bool) -> np.ndarray:
    """What a subscriber decodes from a camera that publishes ``rgb`` in ``encoding``.

    ``compressed``: a CompressedImage camera (``encoding`` jpeg or png). Lossless for the
    colour raw encodings; grey for mono8; JPEG artefacts for jpeg.
    """
    if compressed:
        return decode_compressed(encoding, encode_compressed(rgb, encoding))
    if encoding == 'rgb8':
        return np.ascontiguousarray(_check_rgb(rgb))
    data, step = encode_raw(rgb, encoding)
    return decode_raw(encoding, rgb.shape[0], rgb.shape[1], step, data)

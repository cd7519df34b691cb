"""Cost of the image pipeline (il_ros/images.py) per camera frame; prints JSON.

For each camera format (rgb8 / bgr8 raw Images, JPEG at ``JPEG_QUALITY``) and native size
(84x84, 320x240, 640x480), a smooth random frame is encoded once, then timed:

- ``decode_fit_ms``: decode the message fields and fit to the policy's 84x84 (what the
  controller does per new camera message, and conversion per picked frame);
- ``as_received_fit_ms``: encode + decode + fit from an RGB render (what in-process
  evaluation's CameraFeed adds per new frame).

Median of ``--repeats`` runs, single thread (``cv2.setNumThreads(1)``), on whatever the
machine is doing (its load average is recorded).

    .venv/bin/python bench/images.py [--repeats 200]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from il_ros import images
from il_ros.images import Preprocess


def _frame(h: int, w: int) -> np.ndarray:
    import cv2
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (h // 10, w // 10, 3), dtype=np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    return np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 3)


def main() -> None:
    import cv2
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=200)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    pre = Preprocess((84, 84))
    rows = []
    for h, w in [(84, 84), (240, 320), (480, 640)]:
        rgb = _frame(h, w)
        for fmt in ('rgb8', 'bgr8', 'jpeg'):
            if fmt == 'jpeg':
                data = images.encode_compressed(rgb)

                def decode(data=data):
                    return images.fit(images.decode_compressed('jpeg', data), pre)
                size = len(data)
            else:
                data, step = images.encode_raw(rgb, fmt)

                def decode(data=data, step=step, fmt=fmt):
                    return images.fit(images.decode_raw(fmt, h, w, step, data), pre)
                size = len(data)

            def feed(fmt=fmt):
                return images.fit(images.as_received(rgb, fmt, fmt == 'jpeg'), pre)
            rows.append({'native': f'{w}x{h}', 'format': fmt, 'bytes': size,
                         'decode_fit_ms': _median_ms(decode, args.repeats),
                         'as_received_fit_ms': _median_ms(feed, args.repeats)})
    print(json.dumps({'policy_size': [84, 84], 'jpeg_quality': images.JPEG_QUALITY,
                      'repeats': args.repeats, 'load_avg': os.getloadavg()[0], 'rows': rows},
                     indent=1))


if __name__ == '__main__':
    main()

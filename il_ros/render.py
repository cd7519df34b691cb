"""The one place that chooses how MuJoCo renders offscreen.

MuJoCo reads ``MUJOCO_GL`` when it is first imported, so a process that renders calls
:func:`setup_headless_gl` before importing ``mujoco`` (``il_ros.sim`` does it on import), and
a process that starts renderers hands :func:`gl_env` to them. A value the user set wins.
"""
from __future__ import annotations

import os
from typing import MutableMapping

DEFAULT_GL = 'egl'
"""EGL renders without a display (Mesa's software renderer here, the GPU's driver on a GPU
machine); ``osmesa`` also works where apt's ``libosmesa6`` is installed."""


def gl_env(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set the headless GL variables in ``env`` (default: ``os.environ``) unless set."""
    env = os.environ if env is None else env
    env.setdefault('MUJOCO_GL', DEFAULT_GL)
    env.setdefault('PYOPENGL_PLATFORM', env['MUJOCO_GL'])
    return env


def setup_headless_gl() -> None:
    """Choose the headless backend for this process (before ``import mujoco``)."""
    gl_env(os.environ)

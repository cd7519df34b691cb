"""What an in-process policy sees of the sim's cameras: the controller's view, without ROS.

Over ROS the sim robot publishes each camera at its native size, in its encoding and at its
rate; the controller decodes the newest message and fits it to the checkpoint's image size
(:mod:`il_ros.images`). :class:`CameraFeed` does the same to the frames an in-process
episode renders (:mod:`il_ros.sim.loop_episode`, ``il-ros eval --direct``), so in-process
observations equal what the controller builds from the ROS messages:

- each frame is sent through its camera's encoding (:func:`il_ros.images.as_received`:
  lossless for rgb8/bgr8/rgba8/bgra8, JPEG at :data:`il_ros.images.JPEG_QUALITY`, as the sim
  robot publishes it) and fitted with the policy's preprocessing;
- with ``hold`` (the default), a camera slower than the control loop repeats frames: at a
  tick at episode time ``t`` the camera shows the frame of its newest sample
  ``floor(t * rate_hz)``, taken at the first tick at or after that sample's time (a 15 Hz
  camera under a 20 Hz loop repeats every fourth frame, as the controller sees it reuse the
  newest message). A camera at the loop's rate or faster changes every tick.

The cameras' encodings and rates come from the env's robot description (``env.robot``, or
the package's sim arm for an env without one).
"""
from __future__ import annotations

import math

import numpy as np

from il_ros.images import as_received, fit, Preprocess, preprocess_of
from il_ros.keys import image_key
from il_ros.robot import Camera, DEFAULT_ROBOT, load_robot, RobotDescription


def env_robot(env) -> RobotDescription:
    """The robot description of a sim env: ``env.robot``, else the package's sim arm."""
    robot = getattr(env, 'robot', None)
    return robot if robot is not None else load_robot(DEFAULT_ROBOT)


class CameraFeed:
    """The policy's camera images of an env's observations (see the module doc).

    Args:
        cameras: the robot description of each camera in the observations.
        preprocess: how a frame becomes the policy's input (None: no fit, the frame as
            received).
        hold: repeat the newest frame until the camera's next sample is due.
    """

    def __init__(self, cameras: dict[str, Camera], preprocess: Preprocess | None,
                 hold: bool = True):
        self.cameras, self.preprocess, self.hold = dict(cameras), preprocess, bool(hold)
        self._held: dict[str, tuple[int, np.ndarray]] = {}   # camera -> (sample, image)

    @classmethod
    def of(cls, env, policy, hold: bool = True) -> CameraFeed:
        """The feed of ``env``'s cameras for ``policy`` (its preprocessing, if any)."""
        if not getattr(env, 'cameras', ()):
            return cls({}, None, hold)                  # nothing to see (a scripted env)
        robot = env_robot(env)
        return cls({c: robot.camera(c) for c in env.cameras}, preprocess_of(policy), hold)

    def reset(self) -> None:
        """Forget the held frames (a new episode starts at t = 0)."""
        self._held.clear()

    def __call__(self, obs: dict, t: float) -> dict:
        """``obs`` with each camera image replaced by the policy's view of it at time ``t``.

        Keys of cameras not in the feed, and observations without images, pass unchanged.
        """
        out = dict(obs)
        for name, cam in self.cameras.items():
            key = image_key(name)
            if key not in obs:
                continue
            sample = math.floor(t * cam.rate_hz + 1e-9) if self.hold else None
            held = self._held.get(name)
            if held is not None and sample is not None and held[0] == sample:
                out[key] = held[1]
                continue
            img = as_received(obs[key], cam.encoding, cam.compressed)
            if self.preprocess is not None:
                img = fit(img, self.preprocess)
            self._held[name] = (sample, img)
            out[key] = img
        return out


def native_size(robot: RobotDescription, cameras) -> tuple[int, int]:
    """(H, W) the sim renders ``cameras`` at: their native size in the robot description.

    The sim renders every camera at one size, so they must share it (ValueError naming the
    robot's file otherwise).
    """
    sizes = {(robot.camera(c).height, robot.camera(c).width) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f'{robot.source or robot.name}: cameras {list(cameras)} have '
                         f'different native sizes {sorted(sizes)} (H, W); the sim renders '
                         f'one size')
    return sizes.pop()

"""The controller's observation: camera images and joint states -> one ControlLoop Observation.

:class:`Streams` keeps the newest message of every stream with its receive time and
freshness (:class:`~il_ros.control.streams.StreamClock`) and builds the policy's frame
from them. Every camera image goes through :mod:`il_ros.images`, the pipeline conversion
uses: decoded (any raw colour encoding, JPEG or PNG) and fitted to the checkpoint's image
size with the checkpoint's preprocessing (:attr:`Streams.preprocess`, set by the node when
a checkpoint is swapped in; a checkpoint without a record: centre crop + area resize), so a
640x480 bgr8 or JPEG camera feeds an 84x84 policy exactly as its recording was converted.
A stream that cannot feed the policy makes the observation invalid (the loop HOLDs), with
a throttled warning naming the topic:

- ``no_image`` / ``no_joint_states``: nothing arrived yet, or nothing since the last
  :meth:`Streams.restart` (a policy reset starts an episode: its first plan must not see
  the frames the last episode ended on, e.g. the hand up with the cube held);
- ``bad_image``: an encoding of another kind than the robot description declares for the
  camera (``mono8`` from a colour camera, colour from a ``mono8`` one, ``16UC1``...), a
  size that does not match its data, or an undecodable JPEG/PNG;
- ``bad_joint_states``: a joint named twice in one message, a missing or non-finite joint;
- ``frozen``: messages arrive but their header stamp stopped advancing;
- ``stale``: the stalest stream is older than the watchdog.
"""
from __future__ import annotations

from collections import defaultdict
import math

import numpy as np
from sensor_msgs.msg import Image, JointState

from il_ros import keys
from il_ros.control.loop_types import Observation
from il_ros.control.streams import duplicate_names, StreamClock
from il_ros.images import COLOR_ENCODINGS, fit, ImageError, Preprocess
from il_ros.ros.conversions import image_to_rgb

JS = ' joint_states'
"""Key of the joint states in Streams.clocks (no camera name starts with a space)."""
FIELDS = {keys.OBS_JOINT_POS: 'position', keys.OBS_JOINT_VEL: 'velocity'}


def stamp_ns(msg) -> int:
    """A message's header stamp in nanoseconds (0: none)."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


class Streams:
    """The newest camera images and joint state (see the module doc).

    ``warn(key, message)`` logs a throttled warning; ``log`` is the node's logger.
    """

    def __init__(self, js_topic: str, warn, log):
        self.js_topic, self.warn, self.log = js_topic, warn, log
        self.camera_topics: dict[str, str] = {}   # camera -> topic
        self.images: dict[str, tuple] = {}        # camera -> (msg, receive time)
        self.clocks = defaultdict(StreamClock)    # camera (or JS) -> newest new sample
        self.encodings: dict[str, str] = {}       # camera -> encoding of its last good image
        self.declared: dict[str, str] = {}        # camera -> encoding the robot declares
        self._rgb: dict[str, tuple] = {}          # camera -> (msg, preprocess, policy input)
        self.preprocess: Preprocess | None = None  # the checkpoint's; None: the default
        self.js = None                            # (msg, receive time)
        self.since = -math.inf                    # messages received before: not seen

    def restart(self, now: float) -> None:
        """From ``now`` on, a message received before ``now`` does not count (module doc)."""
        self.since = now

    def _unseen(self, entry, now: float, limit: float, key: str, what: str) -> bool:
        """Whether ``entry`` (msg, receive time) is missing or older than the restart."""
        if entry is not None and entry[1] >= self.since:
            return False
        if entry is None:
            self.warn(key, f'no {what} yet: HOLD', 5.0)
        elif now - self.since > limit:
            self.warn(key, f'no {what} since the policy reset {now - self.since:.2f} s ago: '
                      'HOLD', 5.0)
        return True

    def on_image(self, cam: str, msg, t: float) -> None:
        """An image of ``cam`` received at ``t``."""
        self.images[cam] = (msg, t)
        self.clocks[cam].update(t, stamp_ns(msg))

    def on_joints(self, msg: JointState, t: float) -> None:
        """A joint state received at ``t``."""
        self.js = (msg, t)
        self.clocks[JS].update(t, stamp_ns(msg))

    def measured(self, action_names: list[str], now: float) -> tuple[np.ndarray | None, float]:
        """Measured positions in command order (NaN: not a joint) and the joint state's age.

        A joint state that names a joint twice measures nothing (None, inf).
        """
        if self.js is None or not action_names:
            return None, math.inf
        msg = self.js[0]
        if duplicate_names(msg.name):
            return None, math.inf
        index = {n: i for i, n in enumerate(msg.name)}
        pos = msg.position
        out = np.array([pos[index[n]] if n in index and index[n] < len(pos) else np.nan
                        for n in action_names], np.float64)
        return out, self.clocks[JS].age(now)

    def observation(self, now: float, robot, proprio: list[str], action_names: list[str],
                    watchdog_s: float, watchdog_periods: float) -> Observation:
        """The loop's Observation at ``now`` (``robot``: the RobotSpec, None before any)."""
        measured, js_age = self.measured(action_names, now)
        obs = Observation(measured=measured, measured_age_s=js_age)
        if robot is None:
            obs.invalid = 'no_policy'
            return obs
        frame, age, obs.invalid = self._frame(now, robot, proprio, watchdog_s,
                                              watchdog_periods)
        obs.frame, obs.age_s = frame, age
        return obs

    def _frame(self, now, robot, proprio, limit, periods) -> tuple[dict | None, float, str]:
        if self._unseen(self.js, now, limit, 'js_none', f'joint state on {self.js_topic}'):
            return None, math.inf, 'no_joint_states'
        ages, frame = [], {}
        pre = self.preprocess or Preprocess(size=tuple(robot.image_size))
        for cam, topic in self.camera_topics.items():
            entry = self.images.get(cam)
            if self._unseen(entry, now, limit, f'img_none_{cam}', f'image on {topic}'):
                return None, math.inf, 'no_image'
            ages.append(self.clocks[cam].age(now))
            rgb = self._rgb_of(cam, topic, entry[0], pre)
            if rgb is None:
                return None, max(ages), 'bad_image'
            frame[keys.image_key(cam)] = rgb
        msg = self.js[0]
        ages.append(self.clocks[JS].age(now))
        dup = duplicate_names(msg.name)
        if dup:
            self.warn('js_dup', f'{self.js_topic}: joints {dup} are named more than once in '
                      f'one message ({list(msg.name)}): HOLD')
            return None, max(ages), 'bad_joint_states'
        for k in proprio:
            v = self._joint_values(msg, list(robot.joint_names), FIELDS[k])
            if v is None:
                return None, max(ages), 'bad_joint_states'
            frame[k] = v
        age = max(ages)
        if not age <= limit:
            i = ages.index(age)
            key, topic = [*self.camera_topics.items(), (JS, self.js_topic)][i]
            clock = self.clocks[key]
            if clock.frozen(now, limit):
                self.warn(f'frozen_{key}', f'{topic}: messages arrive but their header stamp '
                          f'has not advanced for {age * 1e3:.0f} ms (frozen at '
                          f'{clock.stamp_ns * 1e-9:.3f} s; watchdog {periods:g} periods): '
                          'HOLD')
                return None, age, 'frozen'
            self.warn('stale', f'{topic}: newest message {age * 1e3:.0f} ms old (watchdog '
                      f'{periods:g} periods): HOLD')
            return None, age, 'stale'
        return frame, age, None

    def _joint_values(self, msg: JointState, names: list[str], field: str):
        values = getattr(msg, field)
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in names if n not in index]
        if missing or len(values) < len(msg.name):
            self.warn(f'js_{field}', f'{self.js_topic}: no {field} for joints '
                      f'{missing or names} (has {list(msg.name)} with {len(values)} '
                      f'{field} values): HOLD')
            return None
        out = np.array([values[index[n]] for n in names], np.float64)
        if not np.all(np.isfinite(out)):
            self.warn(f'js_nan_{field}', f'{self.js_topic}: non-finite {field} '
                      f'{out.tolist()} for {names}: HOLD')
            return None
        return out

    def _rgb_of(self, cam: str, topic: str, msg, preprocess: Preprocess) -> np.ndarray | None:
        """The policy input of ``msg``, or None (HOLD) with a warning naming the topic."""
        cached = self._rgb.get(cam)
        if cached is not None and cached[0] is msg and cached[1] == preprocess:
            return cached[2]
        if isinstance(msg, Image):
            grey = self.declared.get(cam) == 'mono8'       # a grey camera stays grey
            if msg.encoding not in (('mono8',) if grey else COLOR_ENCODINGS):
                problem = (f'encoding {msg.encoding!r} is not the grey mono8 the robot '
                           f'declares' if grey else f'encoding {msg.encoding!r} is not a colour '
                           f'encoding the policy can use ({", ".join(COLOR_ENCODINGS)})')
                self.warn(f'img_bad_{cam}:{problem}', f'{topic}: {problem}: HOLD')
                return None
            old = self.encodings.get(cam)
            if old is not None and old != msg.encoding:
                self.log.warning(f'{topic}: encoding changed from {old} to {msg.encoding} '
                                 '(converted to RGB)')
            self.encodings[cam] = msg.encoding
        try:
            rgb = fit(image_to_rgb(msg), preprocess)
        except ImageError as e:
            self.warn(f'img_bad_{cam}', f'{topic}: {e}: HOLD')
            return None
        self._rgb[cam] = (msg, preprocess, rgb)
        return rgb

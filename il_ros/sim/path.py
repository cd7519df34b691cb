"""Task ``path`` (long horizon): follow a curved path through five waypoints, in order.

Initial conditions: a smooth curve (centripetal Catmull-Rom) starting at the hand, 5 cm
above the table, and winding through five waypoints that sweep about 90 degrees around the
robot (left to right or right to left) while alternating between radii of about 0.29 and
0.47 m; about 1 m long. The curve is drawn on the table and the waypoints are red discs
that turn green once reached (so the images carry the progress).
Success: all five waypoints reached in order (hand within ``REACH_TOL`` horizontally of the
next one). Failure: 'off_path' as soon as the end effector is more than ``CORRIDOR`` from
the drawn curve horizontally, or its height leaves ``HEIGHT_BAND``. Per robot
(``RADIUS_SHIFT``) the curve runs farther from the base (the Panda: 0.15 m).

Errors compound: the expert needs about 170 control steps at 20 Hz and every step must stay
inside the corridor.
"""
from __future__ import annotations

import numpy as np

from il_ros.sim.env import SimEnv
from il_ros.sim.expert import Expert, lead_time
from il_ros.sim.paths import catmull_rom, Polyline

N_WAYPOINTS = 5
WORK_Z = 0.05                 # height of the path above the table, m
CORRIDOR = 0.04               # max horizontal distance of the end effector from the path, m
HEIGHT_BAND = (0.015, 0.12)   # allowed end-effector heights while following, m
REACH_TOL = 0.02              # horizontal distance that counts as reaching a waypoint, m
_SAMPLES = 16                 # curve samples between consecutive waypoints
_RED = np.array([0.85, 0.12, 0.1, 1.0])
_GREEN = np.array([0.1, 0.8, 0.2, 1.0])
RADIUS_SHIFT = {'sim_arm': 0.0, 'panda': 0.15}
"""Robot name -> how much farther from the base (m) its curve runs than the sim arm's
(radii about 0.29-0.47 m); a robot not listed gets 0."""


class PathEnv(SimEnv):
    """Follow the drawn path through the waypoints (see the module docstring)."""

    task = 'path'
    episode_seconds = 20.0
    params = (('start_ee', 3), ('waypoints', 3 * N_WAYPOINTS),
              ('progress', 1),      # waypoints reached so far, in order
              ('off_path', 1))      # 1 once the hand left the corridor

    def __init__(self, **kwargs):
        self._ready = False
        super().__init__(**kwargs)

    def _setup(self) -> None:
        m = self.model
        names = sorted(m.body(i).name for i in range(m.nbody))
        dashes = [n for n in names if n.startswith('dash_')]
        markers = [n for n in names if n.startswith('marker_')]
        if len(markers) != N_WAYPOINTS:
            raise ValueError(f'{self.scene} must have {N_WAYPOINTS} marker bodies')
        self._dash_mocap = np.array([m.body_mocapid[m.body(n).id] for n in dashes])
        self._dash_geom = np.array([m.body_geomadr[m.body(n).id] for n in dashes])
        self._marker_mocap = np.array([m.body_mocapid[m.body(n).id] for n in markers])
        self._marker_geom = np.array([m.body_geomadr[m.body(n).id] for n in markers])
        self._curve_key: bytes | None = None
        self.curve: Polyline | None = None
        self._ready = True

    def _sample(self, rng):
        if not self._ready:
            self._setup()
        d = 1.0 if rng.random() < 0.5 else -1.0            # sweep direction
        theta = -d * rng.uniform(0.75, 0.85)
        shift = RADIUS_SHIFT.get(self.robot.name, 0.0)
        r0 = rng.uniform(0.32, 0.40) + shift
        start = np.array([r0 * np.cos(theta), r0 * np.sin(theta), WORK_Z])
        sign = 1.0 if rng.random() < 0.5 else -1.0
        wps = []
        for _ in range(N_WAYPOINTS):
            theta += d * rng.uniform(0.28, 0.34)
            r = 0.38 + sign * rng.uniform(0.06, 0.10) + shift
            sign = -sign
            wps.append([r * np.cos(theta), r * np.sin(theta), WORK_Z])
        self.p['start_ee'][:] = start
        self.p['waypoints'][:] = np.ravel(wps)
        return self.arm_pose_for(start), 1.0

    # ---- geometry --------------------------------------------------------------------------
    def waypoints(self) -> np.ndarray:
        """(5, 3) waypoint positions, m."""
        return self.p['waypoints'].reshape(N_WAYPOINTS, 3)

    def waypoint_arc(self, k: int) -> float:
        """Arc length along the curve of point ``k`` (0 = start, 1..5 = waypoints), m."""
        return float(self.curve.cum[k * _SAMPLES])

    def path_distance(self) -> float:
        """Horizontal distance from the end effector to the curve, m."""
        ee = self.ee_pos()
        ee[2] = WORK_Z
        return self.curve.nearest(ee)[0]

    def waypoint_segments(self, k: int) -> tuple[int, int]:
        """Curve segment range from point ``k`` to point ``k + 1``."""
        return k * _SAMPLES, (k + 1) * _SAMPLES

    def _apply_params(self) -> None:
        key = self._pvec[:3 + 3 * N_WAYPOINTS].tobytes()
        if key != self._curve_key:
            pts = np.vstack([self.p['start_ee'], self.waypoints()])
            self.curve = Polyline(catmull_rom(pts, _SAMPLES))
            self._curve_key = key
            self._place_dashes()
        self.data.mocap_pos[self._marker_mocap] = self.waypoints() * [1, 1, 0]
        self._colour_markers()

    def _place_dashes(self) -> None:
        """Draw the curve on the table as a chain of thin strokes between resampled points."""
        pts = self.curve.resample(len(self._dash_mocap) + 1)        # (n+1, 3)
        for i, (a, b) in enumerate(zip(pts[:-1], pts[1:])):
            mid, seg = (a + b) / 2.0, b - a
            yaw = np.arctan2(seg[1], seg[0])
            self.data.mocap_pos[self._dash_mocap[i]] = (mid[0], mid[1], 0.0)
            self.data.mocap_quat[self._dash_mocap[i]] = (np.cos(yaw / 2), 0, 0,
                                                         np.sin(yaw / 2))
            # half length, plus the half width so consecutive strokes overlap at the joints
            self.model.geom_size[self._dash_geom[i], 0] = np.linalg.norm(seg[:2]) / 2 + 0.003

    def _colour_markers(self) -> None:
        k = int(self.p['progress'][0])
        for i, g in enumerate(self._marker_geom):
            self.model.geom_rgba[g] = _GREEN if i < k else _RED

    def _after_control(self) -> None:
        ee = self.ee_pos()
        dist = self.path_distance()
        if dist > CORRIDOR or not HEIGHT_BAND[0] <= ee[2] <= HEIGHT_BAND[1]:
            self.p['off_path'][0] = 1.0
        k = int(self.p['progress'][0])
        if k < N_WAYPOINTS and not self.p['off_path'][0]:
            if np.linalg.norm(ee[:2] - self.waypoints()[k, :2]) < REACH_TOL:
                self.p['progress'][0] = k + 1
                self._colour_markers()

    # ---- outcome ---------------------------------------------------------------------------
    def success(self) -> bool:
        """All waypoints reached in order, never off the path."""
        return bool(self.p['progress'][0] >= N_WAYPOINTS and not self.p['off_path'][0])

    def failure(self) -> str | None:
        """'off_path' once the hand has left the corridor around the path."""
        return 'off_path' if self.p['off_path'][0] else None

    @property
    def info(self) -> dict:
        """{'mode': None, 'collision': False, 'progress': int, 'path_distance': m}."""
        return {'mode': None, 'collision': False, 'progress': int(self.p['progress'][0]),
                'path_distance': self.path_distance()}


class PathExpert(Expert):
    """Track the curve: the set-point is the curve point a little ahead of the nearest one.

    The set-point lies on the curve, so a sideways error (from noise) is corrected in full at
    every step while progress along the curve is limited to ``speed``. The nearest point is
    searched only around the stretch to the next unreached waypoint, so a curve passing near
    itself cannot make the expert skip ahead, and the set-point never passes that waypoint.
    """

    task = 'path'
    speed = 0.16              # m/s along the curve (set-point speed; the hand lags it)

    def _plan(self, env: PathEnv) -> np.ndarray:
        k = int(env.p['progress'][0])
        curve = env.curve
        if k >= N_WAYPOINTS:
            goal = curve.points[-1]
        else:
            lo, hi = env.waypoint_segments(k)
            _, s = curve.nearest(env.ee_pos(), max(0, lo - _SAMPLES // 2), hi + _SAMPLES // 2)
            s_cap = env.waypoint_arc(k + 1)          # never aim past the next waypoint
            goal = curve.at(min(s + self.speed * lead_time(env), s_cap))
        return self.move_to(env, goal, 1.0)

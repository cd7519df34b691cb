"""Task ``reach_around``: reach a target behind a pillar; bimodal (left or right of it).

Initial conditions: the closed hand pointing down 5 cm above the table near x = 0.22 m; the
pillar (5 cm deep, 14 cm wide, 16 cm tall) at x in [0.36, 0.40] m; the target (green
sphere, 5 cm up) behind it at x in [0.51, 0.55] m. Small random y offsets for all three.
Per robot (``X_SHIFT``, ``CLEARANCE``): all three lie farther out in x, and the detour
keeps more clearance (the Panda: 0.15 m farther, 0.16 m beside the pillar).
Success: the end effector within ``REACH_TOL`` of the target without having touched the
pillar. Failure: 'collision' as soon as any robot part touches the pillar.

``info['mode']`` says on which side the hand actually passed the pillar ('left' is +y, the
robot's left), from the end-effector trajectory, so it classifies any controller. A
controller that averages the two modes drives straight into the pillar.
"""
from __future__ import annotations

import numpy as np

from il_ros.robot import DEFAULT_ROBOT
from il_ros.sim.env import SimEnv
from il_ros.sim.expert import Expert
from il_ros.sim.paths import Polyline

REACH_TOL = 0.025             # m
WORK_Z = 0.05                 # height of the start and the target, m
MODES = ('left', 'right')
X_SHIFT = {'sim_arm': 0.0, 'panda': 0.15}
"""Robot name -> how much farther out (m, along x) its start, pillar and target lie than
the sim arm's; a robot not listed gets 0."""
CLEARANCE = {'sim_arm': (0.07, 0.10), 'panda': (0.07, 0.16)}
"""Robot name -> the detour's clearance (m) in front of/behind the pillar and beside it;
the Panda's hand is 19 cm long across the fingers. A robot not listed gets the sim arm's."""


class ReachAroundEnv(SimEnv):
    """Reach the target behind the pillar without touching it (see the module docstring)."""

    task = 'reach_around'
    episode_seconds = 7.0
    params = (('start_ee', 3), ('pillar', 3), ('target', 3),
              ('side', 1),        # +1 passed on the left, -1 on the right, 0 not yet
              ('collided', 1))    # 1 once a robot part touched the pillar

    def __init__(self, **kwargs):
        self._ready = False
        super().__init__(**kwargs)

    def _setup(self) -> None:
        m = self.model
        self._pillar_mocap = m.body_mocapid[m.body('pillar').id]
        self._target_mocap = m.body_mocapid[m.body('target').id]
        self.pillar_half = m.geom('pillar').size.copy()        # (3,) half extents, m
        self._sensor = m.sensor_adr[m.sensor('pillar_contact').id]
        self._ready = True

    def _sample(self, rng):
        if not self._ready:
            self._setup()
        hz = self.pillar_half[2]
        dx = X_SHIFT.get(self.robot.name, 0.0)
        self.p['pillar'][:] = (rng.uniform(0.36, 0.40) + dx, rng.uniform(-0.02, 0.02), hz)
        self.p['target'][:] = (rng.uniform(0.51, 0.55) + dx, rng.uniform(-0.04, 0.04),
                               WORK_Z)
        start = np.array([rng.uniform(0.20, 0.24) + dx, rng.uniform(-0.03, 0.03), WORK_Z])
        self.p['start_ee'][:] = start
        return self.arm_pose_for(start), 1.0

    def _apply_params(self) -> None:
        self.data.mocap_pos[self._pillar_mocap] = self.p['pillar']
        self.data.mocap_pos[self._target_mocap] = self.p['target']

    def _after_physics_step(self) -> None:
        if self.data.sensordata[self._sensor] > 0:
            self.p['collided'][0] = 1.0

    def _after_control(self) -> None:
        self._after_physics_step()
        ee, c = self.ee_pos(), self.p['pillar']
        hx, hy = self.pillar_half[:2]
        if abs(ee[0] - c[0]) < hx + 0.03 and abs(ee[1] - c[1]) > hy:
            self.p['side'][0] = np.sign(ee[1] - c[1])

    def success(self) -> bool:
        """Tell whether the hand is at the target and the pillar was never touched."""
        near = np.linalg.norm(self.ee_pos() - self.p['target']) < REACH_TOL
        return bool(near and self.p['collided'][0] == 0)

    def failure(self) -> str | None:
        """'collision' once any robot part has touched the pillar."""
        return 'collision' if self.p['collided'][0] else None

    @property
    def info(self) -> dict:
        """{'mode': 'left' | 'right' | None (side the hand passed), 'collision': bool}."""
        side = self.p['side'][0]
        mode = 'left' if side > 0 else 'right' if side < 0 else None
        return {'mode': mode, 'collision': bool(self.p['collided'][0])}

    def detour(self, mode: str, clearance: tuple[float, float] | None = None) -> Polyline:
        """Return the path start -> beside the pillar on ``mode``'s side -> target.

        ``clearance``: (in front of/behind, beside) the pillar, m; None: the robot's
        (``CLEARANCE``).
        """
        if clearance is None:
            clearance = CLEARANCE.get(self.robot.name, CLEARANCE['sim_arm'])
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        sign = 1.0 if mode == 'left' else -1.0
        c = self.p['pillar']
        hx, hy = self.pillar_half[:2]
        y = c[1] + sign * (hy + clearance[1])
        a = [c[0] - hx - clearance[0], y, WORK_Z]
        b = [c[0] + hx + clearance[0], y, WORK_Z]
        return Polyline(np.array([self.p['start_ee'], a, b, self.p['target']]))


class ReachAroundExpert(Expert):
    """Follow the detour on a side drawn at random at every reset.

    Sides are drawn in shuffled pairs (one 'left' and one 'right' per two episodes, in
    random order), so a run of 2k episodes has exactly k of each; reseeding starts a new
    pair. ``mode`` may fix the side to 'left' or 'right' instead.
    """

    task = 'reach_around'
    speed = 0.35              # m/s (set-point speed; the hand lags it)
    lookahead = 0.04          # m along the path

    def __init__(self, *, noise: float = 0.0, seed: int | None = None,
                 mode: str | None = None, robot=DEFAULT_ROBOT):
        super().__init__(noise=noise, seed=seed, robot=robot)
        if mode is not None and mode not in MODES:
            raise ValueError(f'mode must be one of {MODES} or None, got {mode!r}')
        self.fixed_mode = mode
        self.mode = mode
        self._bag: list[str] = []

    def reset(self, env: ReachAroundEnv, seed: int | None = None) -> None:
        """Pick this episode's side (see the class docstring)."""
        if seed is not None:
            self._bag = []
        super().reset(env, seed)

    def _on_reset(self, env: ReachAroundEnv) -> None:
        if self.fixed_mode is not None:
            self.mode = self.fixed_mode
            return
        if not self._bag:
            self._bag = [MODES[i] for i in self._rng.permutation(len(MODES))]
        self.mode = self._bag.pop()

    def _plan(self, env: ReachAroundEnv) -> np.ndarray:
        path = env.detour(self.mode)
        _, s = path.nearest(env.ee_pos())
        goal = path.at(s + self.lookahead)
        return self.move_to(env, goal, 1.0, speed=self.speed)

"""The task registry: names, ``make_env`` and ``make_expert``."""
from __future__ import annotations

from il_ros.sim.env import SimEnv
from il_ros.sim.expert import Expert
from il_ros.sim.lift import LiftEnv, LiftExpert
from il_ros.sim.path import PathEnv, PathExpert
from il_ros.sim.reach_around import ReachAroundEnv, ReachAroundExpert

_ENVS: dict[str, type[SimEnv]] = {
    'lift': LiftEnv, 'reach_around': ReachAroundEnv, 'path': PathEnv}
_EXPERTS: dict[str, type[Expert]] = {
    'lift': LiftExpert, 'reach_around': ReachAroundExpert, 'path': PathExpert}
TASKS: tuple[str, ...] = tuple(_ENVS)


def _check(task: str) -> None:
    if task not in _ENVS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')


def make_env(task: str, *, cameras=('front',), image_size=(84, 84), control_dt: float = 0.05,
             render: bool = True, seed: int | None = None) -> SimEnv:
    """Make a ready (already reset) env of ``task``."""
    _check(task)
    return _ENVS[task](cameras=tuple(cameras), image_size=tuple(image_size),
                       control_dt=control_dt, render=render, seed=seed)


def make_expert(task: str, *, noise: float = 0.0, seed: int | None = None) -> Expert:
    """Make the scripted expert of ``task`` (``noise``: DART std, rad, on arm joints)."""
    _check(task)
    return _EXPERTS[task](noise=noise, seed=seed)

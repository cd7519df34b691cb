"""The scripted supervisor's gate (ROS-free).

It leaves the expert alone, takes over a policy that drifts towards failure or stalls, hands
back once recovered, and counts its steps.
"""
from __future__ import annotations

import numpy as np
import pytest

from il_ros.sim import make_env, make_expert
from il_ros.sim.supervisor import GateConfig, Supervisor


def run(task, policy, seed=1000, gate=None, steps=None):
    """Run one in-process episode where ``policy(env, expert)`` drives unless the supervisor does.

    Returns (supervisor, events, env, success).
    """
    env = make_env(task, render=False)
    expert = make_expert(task, seed=seed)
    sup = Supervisor(task, gate)
    env.reset(seed=seed)
    expert.reset(env, seed=seed)
    executed, events, ok, in_control = None, [], False, 0
    for k in range(steps or env.max_steps):
        s = sup.step(env.get_state(), executed)
        if s.event:
            events.append((k, s.event, s.reason))
        in_control += s.in_control
        executed = s.label if s.in_control else policy(env, expert)
        _, ok, done = env.step(executed)
        if done:
            break
    assert sup.episode_human_steps == sup.human_steps == in_control
    assert sup.takeovers == sum(e[1] == 'takeover' for e in events)
    return sup, events, env, ok


def expert_policy(env, expert):
    return expert.act(env).label


def drifting(env, expert):
    """The expert's command with the base turned 0.15 rad off: leaves the path sideways."""
    return expert.act(env).label + np.r_[0.15, 0, 0, 0, 0, 0]


def frozen(env, expert):
    """Command the current pose: the hand stops."""
    return np.r_[env.arm_qpos(), expert.act(env).label[-1]]


@pytest.mark.parametrize('task', ['path', 'lift'])
def test_expert_is_never_taken_over(task):
    sup, events, env, ok = run(task, expert_policy)
    assert ok and events == [] and sup.human_steps == 0 and sup.steps > 40


def test_drift_is_caught_before_the_corridor_edge_and_released():
    sup, events, env, ok = run('path', drifting, steps=200)
    kinds = [e[1] for e in events]
    assert kinds[0] == 'takeover' and 'release' in kinds
    assert events[0][2] in ('danger', 'deviation')
    assert env.failure() is None, 'the supervisor let the hand leave the corridor'
    # takeovers and releases alternate
    assert all(a != b for a, b in zip(kinds, kinds[1:]))
    g = sup.gate
    assert sup.human_steps >= sup.takeovers * (g.min_takeover_steps + g.release_steps) - 20


def test_stall_is_taken_over():
    sup, events, env, ok = run('path', frozen, steps=60)
    assert events and events[0][1:] == ('takeover', 'stall')
    assert events[0][0] >= sup.gate.stall_steps


def test_no_command_seen_means_no_deviation_judgement():
    sup = Supervisor('lift')
    env = make_env('lift', render=False)
    for _ in range(5):
        s = sup.step(env.get_state(), None)
        assert s.deviation is None and not s.in_control
        env.step(s.label)


def test_new_episode_resets_the_episode_counts():
    sup, events, env, ok = run('path', drifting, steps=80)
    assert sup.episode_human_steps > 0
    env.reset(seed=1001)
    s = sup.step(env.get_state(), None)
    assert not s.in_control and sup.episode_human_steps == 0 and sup.episode_steps == 1
    assert sup.episodes == 2 and sup.human_steps > 0


def test_gate_config_defaults_and_validation():
    g = GateConfig().for_task('path')
    assert (g.danger_on_m, g.danger_off_m) == (0.02, 0.01)
    assert GateConfig().for_task('lift').danger_on_m == 0.0
    assert GateConfig(danger_on_m=0.03).for_task('path').danger_off_m == 0.015
    with pytest.raises(ValueError, match='trigger_steps'):
        GateConfig(trigger_steps=0)
    with pytest.raises(ValueError, match='danger_off_m'):
        GateConfig(danger_on_m=0.01, danger_off_m=0.02).for_task('path')
    with pytest.raises(ValueError, match='unknown task'):
        Supervisor('nope')

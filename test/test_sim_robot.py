"""sim_robot's real-time pacing, driven in-process with a fake wall clock (no spinning).

A stall (the process starved for a while, as on a loaded machine during training) must not
make the sim run faster than real time afterwards. It once did: after any stall of more than
0.5 s the lag doubled at every timer call and the sim ran as fast as the CPU allowed, for the
rest of the run (an ``il-ros dagger`` round then saw 20 s of sim per ~6.5 s of wall time,
the 20 Hz controller answered only a third of the sim's ticks and conversion rejected the
round's episodes for stale /il/command).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture
def sim(ros_node, monkeypatch):
    from il_ros.ros import sim_robot as sr
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(sr, 'time', SimpleNamespace(monotonic=lambda: clock.now))
    node = sr.SimRobot()          # task lift, rtf 1, not lockstep

    def run(wall_s: float, step: float = 0.01) -> float:
        """Advance the fake wall clock by ``wall_s`` in timer ticks of ``step``.

        Returns the sim time that passed.
        """
        t0 = node.sim_time
        for _ in range(round(wall_s / step)):
            clock.now += step
            node._advance()
        return node.sim_time - t0

    yield node, clock, run
    node.destroy_node()


def test_sim_follows_real_time(sim):
    node, _, run = sim
    dt = node.env.physics_dt
    assert run(0.5) == pytest.approx(0.5, abs=2 * dt)


@pytest.mark.parametrize('stall_s', [0.4, 2.0])
def test_after_a_stall_the_sim_catches_up_once_then_keeps_real_time(sim, stall_s):
    node, clock, run = sim
    dt = node.env.physics_dt
    run(0.2)
    clock.now += stall_s                       # the process got no CPU for stall_s
    t0 = node.sim_time
    node._advance()
    assert node.sim_time - t0 == pytest.approx(0.25, abs=2 * dt), 'catch up at most 0.25 s'
    # Then real time again, never faster (before the fix: 0.25 s of sim per 10 ms call).
    assert run(1.0) == pytest.approx(1.0, abs=2 * dt)
    assert node.lag_forgiven == pytest.approx(stall_s - 0.25, abs=2 * dt)


def test_command_timeout_holds_the_arm_where_it_is_and_the_gripper_as_commanded(sim):
    """The hold command puts each arm action at its joint's position, the gripper unchanged."""
    import numpy as np
    node, _, run = sim
    node.command_timeout = 0.1
    a = np.array(node.env.action_high) * 0.5
    node.last_command, node.last_command_t = a, node.sim_time
    node.env.set_command(a)
    run(0.3)                                   # the timeout has passed: the hold was set
    assert node.last_command_t is None
    hold, robot, model = node._hold_action(), node.robot, node.env.model
    assert hold.shape == a.shape
    for i, n in enumerate(robot.action_names):
        want = a[i] if n == robot.gripper.action else \
            node.env.data.qpos[model.jnt_qposadr[model.joint(n).id]]
        assert hold[i] == pytest.approx(want), n

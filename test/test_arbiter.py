"""The takeover arbiter (ROS-free), with an injected clock.

The deadman protocol: heartbeats claim control, the human's command drives only while fresh,
``False`` hands back to the policy, and heartbeats that stop without a hand-back latch a
HOLD until ``rearm`` (the controller's ~/enable or ~/reset).
"""
import numpy as np
import pytest

from il_ros.control.arbiter import (HUMAN_COMMAND_STALE, NO_HUMAN_COMMAND, Source,
                                    TAKEOVER_LAPSED, TakeoverArbiter)


def arbiter():
    return TakeoverArbiter(timeout_s=0.3, command_timeout_s=0.15)


def test_takeover_and_explicit_hand_back():
    arb = arbiter()
    d = arb.decide(0.0, policy_ready=False)
    assert d.source is Source.HOLD and not d.reset_policy and d.reason is None
    d = arb.decide(0.05, policy_ready=True)
    assert d.source is Source.POLICY and d.reset_policy
    assert not arb.decide(0.10, True).reset_policy
    arb.human_command(np.array([0.5]), 0.11)
    arb.heartbeat(0.12)
    d = arb.decide(0.15, True)
    assert d.source is Source.HUMAN and np.allclose(d.command, [0.5])
    arb.human_command(np.array([0.6]), 0.19)
    arb.heartbeat(0.2)
    assert np.allclose(arb.decide(0.25, True).command, [0.6])
    arb.heartbeat(0.27, held=False)                       # explicit hand-back
    d = arb.decide(0.3, True)
    assert d.source is Source.POLICY and d.reset_policy and not arb.latched
    assert arb.human_cmd is None                          # the next takeover needs its own
    assert arb.handovers == 3


def test_a_stale_human_command_is_never_executed():
    """A command sent 3 s before any heartbeat is not executed when heartbeats alone come."""
    arb = arbiter()
    arb.human_command(np.array([1.04]), 0.0)
    for k in range(1, 31):                                # 30 ticks of heartbeats alone
        t = 3.0 + 0.05 * k
        arb.heartbeat(t - 0.01)
        d = arb.decide(t, policy_ready=True)
        assert d.source is Source.HOLD and d.command is None
        assert d.reason == HUMAN_COMMAND_STALE
    arb.human_command(np.array([0.2]), 4.6)               # a fresh one drives at once
    arb.heartbeat(4.6)
    d = arb.decide(4.62, True)
    assert d.source is Source.HUMAN and np.allclose(d.command, [0.2])
    arb.heartbeat(4.7)                                    # the command stops, beats go on
    assert arb.decide(4.74, True).source is Source.HUMAN  # 0.14 s old: still fresh
    d = arb.decide(4.8, True)
    assert d.source is Source.HOLD and d.reason == HUMAN_COMMAND_STALE


def test_a_claim_without_a_command_holds_and_never_lets_the_policy_drive():
    arb = arbiter()
    assert arb.decide(0.0, True).source is Source.POLICY
    arb.heartbeat(0.01)
    d = arb.decide(0.05, True)
    assert d.source is Source.HOLD and d.reason == NO_HUMAN_COMMAND


def test_heartbeats_that_stop_latch_a_hold_until_rearmed():
    arb = arbiter()
    arb.decide(0.0, True)
    arb.human_command(np.array([0.5]), 0.1)
    arb.heartbeat(0.1)
    assert arb.decide(0.1, True).source is Source.HUMAN
    arb.human_command(np.array([0.5]), 0.35)
    assert arb.decide(0.38, True).source is Source.HUMAN
    d = arb.decide(0.45, True)                            # 0.35 s after the beat: lapsed
    assert d.source is Source.HOLD and d.reason == TAKEOVER_LAPSED and arb.latched
    assert arb.lapses == 1
    for t in (0.5, 1.0, 10.0):                            # latched, whatever the policy
        d = arb.decide(t, True)
        assert d.source is Source.HOLD and d.reason == TAKEOVER_LAPSED
    arb.heartbeat(10.0, held=False)                       # a stray release does not clear it
    assert arb.decide(10.05, True).reason == TAKEOVER_LAPSED
    arb.rearm()                                           # ~/enable or ~/reset
    d = arb.decide(10.1, True)
    assert d.source is Source.POLICY and d.reset_policy and not arb.latched


def test_a_new_takeover_while_latched_drives_and_its_hand_back_clears_the_latch():
    arb = arbiter()
    arb.human_command(np.array([0.5]), 0.0)
    arb.heartbeat(0.0)
    arb.decide(0.0, True)
    assert arb.decide(1.0, True).reason == TAKEOVER_LAPSED
    arb.human_command(np.array([0.3]), 2.0)               # the teleop is back
    arb.heartbeat(2.0)
    assert arb.decide(2.02, True).source is Source.HUMAN and not arb.latched
    arb.heartbeat(2.1, held=False)
    assert arb.decide(2.12, True).source is Source.POLICY


@pytest.mark.parametrize('kw', [{'timeout_s': 0.0}, {'timeout_s': float('nan')},
                                {'command_timeout_s': -1.0}])
def test_timeouts_are_validated(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        TakeoverArbiter(**kw)

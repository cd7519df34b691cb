"""ROS-free control core: safety filter, takeover arbiter, timed action chunks."""
import numpy as np
import pytest

from il_ros.control.arbiter import Source, TakeoverArbiter
from il_ros.control.chunks import ActionQueue
from il_ros.control.safety import SafetyConfig, SafetyFilter, Status

P = 0.05  # control period


def make_filter(**kw):
    cfg = SafetyConfig(lower=[-1.0, -1.0, 0.0], upper=[1.0, 1.0, 1.0], max_step=0.2, **kw)
    f = SafetyFilter(cfg, enabled=True)
    f.reset(np.zeros(3))
    return f


def test_ok_clamp_and_step_limit():
    f = make_filter()
    out, st = f([0.1, -0.1, 0.5], 0.0, P)
    assert st is Status.RATE_LIMITED and np.allclose(out, [0.1, -0.1, 0.2])
    out, st = f([0.2, -0.2, 0.3], 0.0, P)
    assert st is Status.OK and np.allclose(out, [0.2, -0.2, 0.3])
    out, st = f([5.0, -0.2, 0.3], 0.0, P)       # over the limit, and a big step
    assert st is Status.RATE_LIMITED and np.allclose(out, [0.4, -0.2, 0.3])
    f.reset(np.array([0.95, 0.0, 0.0]))
    out, st = f([1.5, 0.0, 0.0], 0.0, P)
    assert st is Status.CLAMPED and np.allclose(out, [1.0, 0.0, 0.0])


@pytest.mark.parametrize('cmd', [[np.nan, 0, 0], [np.inf, 0, 0], [0.1, 0.1], None])
def test_invalid_command_holds_the_last_one(cmd):
    f = make_filter()
    f([0.1, 0.1, 0.1], 0.0, P)
    out, st = f(cmd, 0.0, P)
    assert st is Status.HOLD_INVALID and np.allclose(out, [0.1, 0.1, 0.1])


def test_watchdog_holds_on_stale_observations():
    f = make_filter(watchdog_periods=3)
    f([0.1, 0.0, 0.0], 0.0, P)
    assert f([0.2, 0.0, 0.0], 3 * P, P)[1] is Status.OK
    out, st = f([0.3, 0.0, 0.0], 3.5 * P, P)
    assert st is Status.HOLD_STALE and np.allclose(out, [0.2, 0.0, 0.0])
    assert f([0.3, 0.0, 0.0], float('nan'), P)[1] is Status.HOLD_STALE


def test_disabled_sends_nothing_and_remembers_nothing():
    f = make_filter()
    f.enabled = False
    out, st = f([0.1, 0.0, 0.0], 0.0, P)
    assert st is Status.HOLD_DISABLED and not f.sendable
    assert f.last_sent is not None and np.allclose(f.last_sent, 0)  # unchanged by the call


def test_hold_before_any_command_uses_the_measured_pose():
    f = SafetyFilter(SafetyConfig(lower=[-1.0], upper=[1.0]), enabled=True)
    out, st = f([np.nan], 0.0, P, measured=np.array([0.3]))
    assert st is Status.HOLD_INVALID and np.allclose(out, [0.3])
    assert f([np.nan], 0.0, P)[0] is not None  # the held pose is remembered


def test_config_is_validated():
    with pytest.raises(ValueError, match='lower <= upper'):
        SafetyConfig(lower=[1.0], upper=[0.0])
    with pytest.raises(ValueError, match='equal-length'):
        SafetyConfig(lower=[0.0, 0.0], upper=[1.0])


def test_arbiter_hands_over_on_heartbeats_and_back_after_timeout():
    arb = TakeoverArbiter(timeout_s=0.3)
    d = arb.decide(0.0, policy_ready=False)
    assert d.source is Source.HOLD and not d.reset_policy
    d = arb.decide(0.05, policy_ready=True)
    assert d.source is Source.POLICY and d.reset_policy
    assert not arb.decide(0.10, True).reset_policy
    arb.heartbeat(0.12)
    assert arb.decide(0.15, True).source is Source.POLICY  # no human command yet
    arb.human_command(np.array([0.5]))
    d = arb.decide(0.2, True)
    assert d.source is Source.HUMAN and np.allclose(d.command, [0.5])
    assert arb.decide(0.42, True).source is Source.HUMAN    # 0.30 s after the beat
    d = arb.decide(0.45, True)                             # lapsed
    assert d.source is Source.POLICY and d.reset_policy
    assert arb.human_cmd is None  # the next takeover needs a fresh command
    arb.heartbeat(0.5)
    arb.human_command(np.array([0.1]))
    assert arb.decide(0.5, True).source is Source.HUMAN
    arb.heartbeat(0.55, held=False)                        # explicit release
    assert arb.decide(0.55, True).source is Source.POLICY


def test_chunks_receding_horizon_and_dropping():
    q = ActionQueue(P)
    q.add_chunk(np.arange(8)[:, None] * 1.0, t_first=1.0)    # ticks 20..27
    assert q.pop(1.0)[0] == 0 and q.pop(1.05)[0] == 1
    # Inference took 2 periods: actions for 1.10 and 1.15 were never executed: dropped.
    assert q.pop(1.20)[0] == 4 and q.dropped == 2
    q.add_chunk(np.full((4, 1), 9.0), t_first=1.20)          # replaces ticks 24..27
    assert q.pop(1.25)[0] == 9.0 and q.remaining(1.25) == 2
    q.pop(1.30)
    q.pop(1.35)
    assert q.pop(1.40) is None and q.underruns == 1


def test_temporal_ensembling_weights_older_predictions_more():
    q = ActionQueue(P, ensemble_k=1.0)
    q.add_chunk(np.zeros((3, 1)), 0.0)
    q.add_chunk(np.ones((3, 1)), 0.05)
    a = q.pop(0.05)[0]
    assert a == pytest.approx(np.exp(-1) / (1 + np.exp(-1)))


def test_step_limit_per_value_where_measured():
    """A value no joint state measures (NaN, e.g. a gripper) is not step-limited at first.

    HOLD before any command needs every value measured.
    """
    f = SafetyFilter(SafetyConfig(lower=[-1.0, 0.0], upper=[1.0, 1.0], max_step=0.1),
                     enabled=True)
    measured = np.array([0.0, np.nan])
    out, st = f([0.5, 1.0], 0.0, P, measured=measured)
    assert st is Status.RATE_LIMITED and np.allclose(out, [0.1, 1.0])
    out, st = f([0.5, 0.0], 0.0, P, measured=measured)      # now relative to the last sent
    assert np.allclose(out, [0.2, 0.9])
    g = SafetyFilter(SafetyConfig(lower=[-1.0, 0.0], upper=[1.0, 1.0]), enabled=True)
    assert g([np.nan, 0.0], 0.0, P, measured=measured)[0] is None

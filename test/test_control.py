"""ROS-free control core: safety filter, step limits, stream checks, timed action chunks.

The takeover arbiter has its own file, test/test_arbiter.py.
"""
import numpy as np
import pytest

from il_ros.control.chunks import ActionQueue
from il_ros.control.safety import (check_limit_settings, check_step_limit,
                                   check_step_settings, SafetyConfig, SafetyFilter,
                                   SettingError, Status, step_limits, StepLimitError)
from il_ros.control.streams import duplicate_names, StreamClock

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


@pytest.mark.parametrize('bad', [0.0, -0.1, -float('inf'), float('nan'), None])
def test_a_step_limit_is_never_disabled_by_an_invalid_value(bad):
    """0, negative and NaN used to mean "no limit": a typo turned the safety limit off."""
    with pytest.raises(StepLimitError, match='max_step'):
        check_step_limit('max_step', bad)
    with pytest.raises(ValueError, match='max_step'):
        SafetyConfig(lower=[-1.0], upper=[1.0], max_step=bad)
    with pytest.raises(StepLimitError, match='max_step'):
        step_limits(['a', 'g'], ['a'], [bad])
    with pytest.raises(StepLimitError, match=r'max_step=.*value 1'):
        step_limits(['a', 'g'], ['a'], [0.1, bad])
    with pytest.raises(StepLimitError, match='must be a number'):
        check_step_limit('max_step', '0.1')
    f = make_filter()
    with pytest.raises(ValueError):
        f.set_step([0.2, 0.2, bad])
    out, _ = f([1.0, 1.0, 1.0], 0.0, P)           # the old limits still hold
    assert np.allclose(out, [0.2, 0.2, 0.2])


def test_no_step_limit_only_when_explicitly_allowed():
    with pytest.raises(StepLimitError, match='allow_unlimited_step'):
        check_step_limit('max_step', float('inf'))
    assert check_step_limit('max_step', float('inf'), allow_unlimited=True) == float('inf')
    with pytest.raises(StepLimitError, match='allow_unlimited_step'):
        SafetyConfig(lower=[-1.0], upper=[1.0], max_step=float('inf'))
    cfg = SafetyConfig(lower=[-1.0, -1.0], upper=[1.0, 1.0], max_step=[float('inf'), 0.1],
                       allow_unlimited=True)
    f = SafetyFilter(cfg, enabled=True)
    f.reset(np.zeros(2))
    out, st = f([0.9, 0.9], 0.0, P)
    assert st is Status.RATE_LIMITED and np.allclose(out, [0.9, 0.1]) and f.unlimited == [0]
    f.set_step([0.05, 0.05])                       # a runtime change applies at once
    assert np.allclose(f([0.0, 0.9], 0.0, P)[0], [0.85, 0.15]) and f.unlimited == []


def test_step_limits_one_setting_defaults_by_kind_one_for_all_or_per_value():
    assert step_limits(['a', 'b', 'g'], ['b', 'a']) == [0.1, 0.1, 1.0]     # by kind
    assert step_limits(['a', 'g'], ['a'], [0.2]) == [0.2, 0.2]
    assert step_limits(['a', 'g'], ['a'], [0.2, 0.3]) == [0.2, 0.3]
    with pytest.raises(StepLimitError, match='one per command value'):
        step_limits(['a', 'b', 'g'], ['a'], [0.2, 0.3])


def test_a_stream_with_frozen_stamps_ages_while_messages_arrive():
    c = StreamClock()
    assert c.age(0.0) == float('inf') and not c.frozen(0.0, 0.15)
    for i in range(5):                              # stamps advance: fresh
        assert c.update(i * 0.05, 1_000 + i)
    assert c.age(0.2) == pytest.approx(0.0)
    for i in range(5, 12):                          # same stamp, messages keep arriving
        assert not c.update(i * 0.05, 1_004)
    assert c.age(0.55) == pytest.approx(0.35) and c.frozen(0.55, 0.15) and c.repeats == 7
    assert c.update(0.6, 1_005) and not c.frozen(0.6, 0.15)   # advancing again
    assert not c.frozen(2.0, 0.15)                 # nothing arrives at all: stale, not frozen
    z = StreamClock()                              # no stamps: receive time alone
    assert z.update(0.0, 0) and z.update(0.1, 0) and z.age(0.1) == 0.0


def test_joint_name_checks():
    assert duplicate_names(['a', 'b', 'a', 'c', 'b']) == ['a', 'b']
    assert duplicate_names(['a', 'b']) == []


def test_settings_checks_name_the_setting_and_value():
    check_limit_settings([], [])                           # limits come later (sim arm)
    check_limit_settings([-1.0, 0.0], [1.0, 1.0], ['a', 'g'])
    for lower, upper, names, match in [
            ([0.0, 1.0], [1.0, 0.5], (), r'joint_lower=\[0.0, 1.0\]: must not exceed'),
            ([0.0], [1.0, 2.0], (), 'joint_upper=.*one value per joint_lower'),
            ([float('nan')], [1.0], (), 'joint_lower=.*finite'),
            ([0.0], [1.0], ['a', 'g'], 'one value per action_names')]:
        with pytest.raises(SettingError, match=match):
            check_limit_settings(lower, upper, names)
    assert check_step_settings([]) is False and check_step_settings([0.1, 1.0]) is False
    inf = float('inf')
    assert check_step_settings([0.1, inf], True) is True
    with pytest.raises(StepLimitError, match=r'max_step=\[0.1, -1.0\]: value 1'):
        check_step_settings([0.1, -1.0])
    with pytest.raises(StepLimitError, match='one per command value'):
        check_step_settings([0.1, 0.2], action_names=['a', 'b', 'g'])


def test_chunk_guard_rules_and_policies():
    from il_ros.control.chunk_guard import ChunkGuard
    g = ChunkGuard([-1.0, 0.0], [1.0, 1.0], max_jump=0.3, max_velocity=[2.0, 50.0], period_s=P,
                   policy='reject', names=['j', 'g'])
    ok = np.array([[0.0, 0.5], [0.05, 0.5], [0.1, 1.01]])     # 1.01: within the 2% tolerance
    assert g.check(ok, np.array([0.0, np.nan])).broken == []
    v = g.check(np.array([[0.0, 0.5], [0.0, 1.1]]), None)
    assert v.actions is None and v.broken == ['limits'] and 'g = 1.1' in v.detail
    v = g.check(np.array([[0.5, 0.5]]), np.array([0.0, 0.0]))
    assert v.broken == ['jump'] and 'max_jump 0.3' in v.detail
    assert g.check(np.array([[0.5, 0.5]]), np.array([np.nan, 0.5])).broken == []   # no ref
    v = g.check(np.array([[0.0, 0.5], [0.2, 0.5]]), None)       # 0.2 / 0.05 s = 4 /s
    assert v.broken == ['velocity'] and 'actions 0->1 j at 4/s' in v.detail
    v = g.check(np.array([[np.nan, 0.5]]), None)
    assert v.nonfinite and v.actions is None
    assert g.check(np.zeros((2, 3)), None).broken == ['shape']
    assert g.counts['rejected'] == 5 and g.counts['checked'] == 7
    with pytest.raises(ValueError, match='chunk policy'):
        ChunkGuard([0.0], [1.0], 1.0, 1.0, P, policy='ignore')

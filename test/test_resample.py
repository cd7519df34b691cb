"""Causal resampling, time-base choice, staleness and frame labels (no bags needed)."""
import numpy as np
import pytest

from il_ros import keys
from il_ros.config import ConfigError
from il_ros.data.convert import label_frames
from il_ros.data.resample import (choose_timing, first_backwards, latest_at_or_before,
                                  staleness, tick_grid)
from il_ros.data.topic_map import ConvertConfig, load_topic_map


def test_latest_at_or_before_is_causal():
    times = np.array([0.0, 0.1, 0.2, 0.3])
    ticks = np.array([-0.01, 0.0, 0.05, 0.1, 0.29, 0.31])
    np.testing.assert_array_equal(latest_at_or_before(times, ticks), [-1, 0, 0, 1, 2, 3])
    # With lookahead the action answering tick t (sent shortly after t) is taken.
    np.testing.assert_array_equal(latest_at_or_before(times, np.array([0.08]), 0.025), [1])


def test_tick_grid_starts_when_every_stream_has_data():
    ticks = tick_grid([0.0, 0.13], [1.0, 0.9], rate_hz=10)
    assert ticks[0] == pytest.approx(0.13) and ticks[-1] <= 0.9
    np.testing.assert_allclose(np.diff(ticks), 0.1)
    assert tick_grid([1.0], [0.5], 10).size == 0
    # Anchored on a camera: the first camera frame once every stream has started.
    cam = np.arange(0.0, 1.0, 0.1) + 0.02
    anchored = tick_grid([0.0, 0.13], [1.0, 0.95], 10, anchor=cam)
    assert anchored[0] == pytest.approx(0.22)
    np.testing.assert_allclose(anchored, cam[2:10], atol=1e-9)


def test_choose_timing_prefers_plausible_header_stamps():
    recv = np.arange(10) * 0.1 + 100.0
    assert choose_timing(recv - 0.01, recv, 0.5).source == 'header'
    zero = choose_timing(np.zeros(10), recv, 0.5)
    assert zero.source == 'receive' and 'zero' in zero.note
    other_clock = choose_timing(recv - 50.0, recv, 0.5)
    assert other_clock.source == 'receive' and '+50.000s' in other_clock.note
    assert choose_timing(None, recv, 0.5).note == 'type has no header'


def test_first_backwards():
    assert first_backwards(np.array([0, 1, 2.0])) is None
    assert first_backwards(np.array([0, 1, 0.5, 2.0])) == 2


def test_staleness_measures_a_gap_in_periods():
    times = np.r_[np.arange(0, 1, 0.05), np.arange(1.5, 2.5, 0.05)]  # 0.5 s gap at 20 Hz
    ticks = np.arange(0, 2.4, 0.05)
    st = staleness(times, ticks, latest_at_or_before(times, ticks), 0.05, warn_periods=2)
    assert st.worst_periods == pytest.approx(10.0, abs=1.01)
    assert 1.4 < st.worst_tick_time < 1.5 and st.stale_ticks >= 7
    steady = staleness(times[:20], ticks[:20], latest_at_or_before(times[:20], ticks[:20]),
                       0.05, 2)
    assert steady.worst_periods <= 1.0 and steady.stale_ticks == 0


def test_labels_mark_the_frames_before_a_takeover():
    src = ['policy'] * 6 + ['intervention'] * 3 + ['policy'] * 3 + ['intervention']
    warnings = []
    labels = label_frames(src, len(src), pre_frames=2, warnings=warnings)
    assert list(labels) == (['policy'] * 4 + ['pre_intervention'] * 2 + ['intervention'] * 3
                            + ['policy'] + ['pre_intervention'] * 2 + ['intervention'])
    assert list(label_frames(None, 3, 2, warnings)) == [keys.SOURCE_DEMO] * 3
    odd = label_frames(['autopilot', 'policy'], 2, 2, warnings)
    assert list(odd) == ['demo', 'policy'] and 'autopilot' in warnings[-1]


def test_topic_map_yaml_and_errors(tmp_path):
    f = tmp_path / 'topics.yaml'
    f.write_text('cameras: {wrist: /r/wrist/compressed}\n'
                 'joint_states: {topic: /r/js, joints: [b, a]}\n'
                 'action: {topic: /r/cmd, type: joint_trajectory}\n')
    tm = load_topic_map(f)
    assert tm.cameras == {'wrist': '/r/wrist/compressed'} and tm.joint_states.joints == ['b', 'a']
    assert tm.required_topics() == ['/r/wrist/compressed', '/r/js', '/r/cmd']
    f.write_text('action: {topic: /x, type: pose}\n')
    with pytest.raises(ConfigError, match=r'topics.yaml.*action.type'):
        load_topic_map(f)
    f.write_text('camras: {}\n')
    with pytest.raises(ConfigError, match='unknown key'):
        load_topic_map(f)
    with pytest.raises(ValueError, match='stale_warn'):
        ConvertConfig(stale_warn=5, stale_reject=4)

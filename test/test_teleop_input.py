"""ROS-free teleop input: jogging, clamping, gripper toggling, deadman timing."""
import numpy as np
import pytest

from il_ros.control.teleop_input import Deadman, JointJogger, joy_delta, key_delta


def test_jog_clamps_to_limits_and_appends_gripper():
    j = JointJogger(low=[-1, -1], high=[1, 1])
    with pytest.raises(RuntimeError, match='sync'):
        j.jog([0.1, 0])
    j.sync(np.array([0.5, 0.0]))
    j.jog(key_delta('q', 2, 0.3))
    j.jog(key_delta('q', 2, 0.3))
    np.testing.assert_allclose(j.action(), [1.0, 0.0, 0.0])  # clamped at the upper limit
    j.jog(key_delta('s', 2, 0.25))
    np.testing.assert_allclose(j.action(), [1.0, -0.25, 0.0])


def test_keys_outside_the_arm_are_ignored():
    assert key_delta('t', 2, 0.1) is None  # joint 5 on a 2-joint arm
    assert key_delta('x', 6, 0.1) is None


def test_gripper_toggles_once_per_press():
    j = JointJogger(low=[0], high=[1])
    j.toggle_gripper(True)
    j.toggle_gripper(True)  # still held: no second toggle
    assert j.gripper == 1.0
    j.toggle_gripper(False)
    j.toggle_gripper(True)
    assert j.gripper == 0.0


def test_joy_axes_with_deadzone():
    d = joy_delta([0.05, -1.0, 0.5], axis_map=[0, 1, 2, -1], scale=2.0, dt=0.1)
    np.testing.assert_allclose(d, [0.0, -0.2, 0.1, 0.0])


def test_deadman_lapses_after_timeout():
    dm = Deadman(timeout_s=0.5)
    assert not dm.active(0.0)
    dm.press(1.0)
    assert dm.active(1.4) and not dm.active(1.6)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match='low <= high'):
        JointJogger(low=[1.0], high=[0.0])


def test_deadman_release_ends_control_at_once():
    d = Deadman(timeout_s=0.5)
    d.press(1.0)
    assert d.active(1.1)
    d.release()                       # the button let go: no waiting for the timeout
    assert not d.active(1.1)

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


def test_gripper_sits_at_its_action_index_or_is_absent():
    j = JointJogger(low=[-1, -1], high=[1, 1], gripper_index=0)
    j.sync([0.5, -0.5])
    j.toggle_gripper(True)
    np.testing.assert_allclose(j.action(), [1.0, 0.5, -0.5])
    j = JointJogger(low=[-1, -1], high=[1, 1], gripper_index=None)   # no gripper
    j.sync([0.5, -0.5])
    np.testing.assert_allclose(j.action(), [0.5, -0.5])


# ---- cartesian teleop: each robot's IK (the one its experts use) ----------------------------
@pytest.fixture(scope='module', params=['sim_arm', 'panda'])
def arm(request):
    from il_ros.sim import make_env
    env = make_env('lift', robot=request.param, render=False, seed=3)
    yield env
    env.close()


def _cartesian(env):
    from il_ros.control.teleop_input import CartesianJogger
    gi = env.action_names.index(env.robot.gripper.action)
    j = CartesianJogger(env.ik, env.data.qpos, gripper_index=gi)
    j.sync(env.arm_qpos())
    return j


@pytest.mark.parametrize('key,axis,sign', [('w', 0, 1), ('s', 0, -1), ('a', 1, 1),
                                           ('d', 1, -1), ('r', 2, 1), ('f', 2, -1)])
def test_a_key_press_moves_the_hand_by_the_step_along_its_axis(arm, key, axis, sign):
    from il_ros.control.teleop_input import cartesian_key_delta
    j = _cartesian(arm)
    start = j.hand_position()
    np.testing.assert_allclose(j.action()[:-1], arm.arm_qpos())   # no jump on taking control
    step = 0.02
    for _ in range(3):
        j.jog(*cartesian_key_delta(key, step, 0.1))
    moved = j.hand_position() - start
    want = np.zeros(3)
    want[axis] = sign * 3 * step
    np.testing.assert_allclose(moved, want, atol=0.002)
    a = j.action()
    assert np.all(a >= arm.action_low) and np.all(a <= arm.action_high)


def test_yaw_key_turns_the_hand_about_the_vertical_in_place(arm):
    from il_ros.control.teleop_input import cartesian_key_delta
    j = _cartesian(arm)
    start, (_, rot) = j.hand_position(), j.ik.site_pose(j.q)
    j.jog(*cartesian_key_delta('q', 0.02, 0.2))
    np.testing.assert_allclose(j.hand_position(), start, atol=0.002)
    q = j.q.copy()
    q[j.ik.qpos_idx] = j.target
    _, rot2 = j.ik.site_pose(q)
    np.testing.assert_allclose(rot2[:, 2], [0, 0, -1], atol=0.02)  # still pointing down
    turned = np.arctan2(np.cross(rot[:, 1], rot2[:, 1])[2], rot[:, 1] @ rot2[:, 1])
    assert turned == pytest.approx(0.2, abs=0.02)                # +0.2 rad about +z


def test_holding_a_key_against_the_workspace_edge_keeps_joints_in_limits(arm):
    """Ticks of a fake clock while the deadman is held: the arm stops at its limits."""
    from il_ros.control.teleop_input import cartesian_key_delta
    j, dm = _cartesian(arm), Deadman(timeout_s=0.5)
    t = 0.0
    for _ in range(200):                        # 10 s of 20 Hz ticks holding 'w'
        t += 0.05
        dm.press(t)
        j.jog(*cartesian_key_delta('w', 0.02, 0.1))
        assert dm.active(t)
        a = j.action()
        assert np.all(a >= arm.action_low - 1e-12) and np.all(a <= arm.action_high + 1e-12)
    # The hand target never ran away from where the arm can actually go.
    assert np.linalg.norm(j.hand - j.hand_position()) <= j.blocked_m + 1e-9
    back = j.hand.copy()
    j.jog(*cartesian_key_delta('s', 0.02, 0.1))                 # one step back moves at once
    assert j.hand_position()[0] < back[0] - 0.01
    assert not dm.active(t + 0.6)


def test_joy_twist_scales_axes_to_speed():
    from il_ros.control.teleop_input import joy_twist
    d, yaw = joy_twist([0.0, 1.0, 0.05, -0.5], axis_map=[1, 0, -1, 3], speed=0.1,
                       yaw_speed=1.0, dt=0.05)
    np.testing.assert_allclose(d, [0.005, 0.0, 0.0])
    assert yaw == pytest.approx(-0.025)

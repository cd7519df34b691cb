"""Behaviour of the ROS-free MuJoCo tasks and their scripted experts (il_ros.sim)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from il_ros.keys import image_key, OBS_JOINT_POS, OBS_JOINT_VEL
from il_ros.robot import load_robot
from il_ros.sim import ARM_JOINTS, Expert, make_env, make_expert, TASKS
from il_ros.sim.registry import robot_tasks
from il_ros.sim.expert_eval import evaluate_expert, main as expert_eval_main
from il_ros.sim.reach_around import ReachAroundExpert

N_ARM = len(ARM_JOINTS)


def run_episode(env, expert, seed, record=False):
    """Reset env and expert, run the expert until done; returns (success, labels)."""
    env.reset(seed=seed)
    expert.reset(env)
    labels, done, ok = [], False, False
    while not done:
        act = expert.act(env)
        if record:
            labels.append(act.label)
        _, ok, done = env.step(act.executed)
    return ok, np.array(labels)


@pytest.fixture(scope='module')
def envs():
    """One render-free env per task, shared by the tests of this module."""
    made = {t: make_env(t, render=False) for t in TASKS}
    yield made
    for e in made.values():
        e.close()


# ---- API and errors ---------------------------------------------------------------------------
def test_tasks_include_the_three_kinds():
    assert TASKS == ('lift', 'reach_around', 'path')


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as e:
        make_env('stack')
    assert all(t in str(e.value) for t in TASKS)
    with pytest.raises(ValueError, match='reach_around'):
        make_expert('nope')


def test_wrong_action_shape_names_expected_shape(envs):
    env = envs['lift']
    with pytest.raises(ValueError, match=r'\(6,\)'):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match='finite'):
        env.set_command(np.full(6, np.nan))


def test_bad_control_dt_and_camera_rejected():
    with pytest.raises(ValueError, match='multiple'):
        make_env('lift', control_dt=0.003, render=False)
    with pytest.raises(ValueError, match='front'):
        make_env('lift', cameras=('side',), render=False)


def test_layout_and_bounds(envs):
    env = envs['reach_around']
    assert env.action_names == ARM_JOINTS + ['gripper']
    assert env.joint_names == ARM_JOINTS + ['finger_left', 'finger_right']
    assert env.action_low.shape == env.action_high.shape == (6,)
    assert np.all(env.action_low < env.action_high)
    assert (env.action_low[-1], env.action_high[-1]) == (0.0, 1.0)
    assert env.physics_dt == pytest.approx(0.002)
    assert env.control_dt == pytest.approx(0.05)
    obs = env.observe()
    assert obs[OBS_JOINT_POS].shape == obs[OBS_JOINT_VEL].shape == (7,)
    assert not any(k.startswith('image/') for k in obs)        # render=False


def test_set_command_clamps_to_joint_limits(envs):
    env = envs['lift']
    env.reset(seed=0)
    env.set_command(env.action_high + 5.0)
    assert np.allclose(env.data.ctrl[:6], env.action_high)


def test_control_dt_sets_substeps():
    env = make_env('lift', control_dt=0.1, render=False, seed=1)
    a = np.concatenate([env.arm_qpos(), [0.0]])
    env.step(a)
    assert env.time == pytest.approx(0.1) and env.steps == 1
    assert env.max_steps == int(np.ceil(env.episode_seconds / 0.1))


# ---- determinism and state --------------------------------------------------------------------
@pytest.mark.parametrize('task', TASKS)
def test_reset_deterministic_under_seed_and_differs_across_seeds(envs, task):
    env = envs[task]
    env.reset(seed=11)
    a = env.get_state()[1:]                      # drop the episode index
    env.reset(seed=12)
    b = env.get_state()[1:]
    env.reset(seed=11)
    c = env.get_state()[1:]
    assert np.array_equal(a, c)
    assert not np.allclose(a, b)


def test_reset_without_seed_follows_make_env_seed():
    e1, e2 = (make_env('path', render=False, seed=5) for _ in range(2))
    for _ in range(2):
        e1.reset()
        e2.reset()
        assert np.array_equal(e1.get_state(), e2.get_state())


@pytest.mark.parametrize('task', TASKS)
def test_state_round_trip_reproduces_expert_in_second_env(envs, task):
    """The teleop node's setting: a second env only gets set_state(get_state()) each step."""
    env = envs[task]
    mirror = make_env(task, render=False)
    ex1 = make_expert(task, noise=0.05, seed=3)
    ex2 = make_expert(task, noise=0.05, seed=3)
    env.reset(seed=21)
    ex1.reset(env)
    episode = None
    for _ in range(70):
        state = env.get_state()
        mirror.set_state(state)
        assert np.array_equal(mirror.get_state(), state)
        if int(state[0]) != episode:
            ex2.reset(mirror)
            episode = int(state[0])
        a1, a2 = ex1.act(env), ex2.act(mirror)
        assert np.allclose(a1.label, a2.label, atol=1e-9)
        assert np.allclose(a1.executed, a2.executed, atol=1e-9)
        assert mirror.success() == env.success() and mirror.info == env.info
        _, _, done = env.step(a1.executed)
        if done:
            break
    with pytest.raises(ValueError, match='shape'):
        mirror.set_state(state[:-1])


def test_joint_state_effort_is_actuator_force(envs):
    env = envs['lift']
    env.reset(seed=2)
    pos, vel, eff = env.joint_state()
    assert pos.shape == vel.shape == eff.shape == (7,)
    # the shoulder carries the arm's weight (gravity compensation through the actuator)
    assert abs(eff[ARM_JOINTS.index('shoulder')]) > 1.0
    # holding the cube: both fingers squeeze it with several newtons
    expert = make_expert('lift')
    expert.reset(env)
    while not env.info['grasped']:
        env.step(expert.act(env).executed)
        assert env.steps < 100
    env.step_physics(10)
    assert np.all(env.joint_state()[2][N_ARM:] < -5.0)


# ---- images -----------------------------------------------------------------------------------
def test_images_have_shape_dtype_and_content():
    env = make_env('lift', cameras=('front', 'wrist'), image_size=(48, 64), seed=0)
    try:
        obs = env.observe()
        for cam in ('front', 'wrist'):
            img = obs[image_key(cam)]
            assert img.shape == (48, 64, 3) and img.dtype == np.uint8
            assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50
        assert not np.array_equal(obs['image/front'], obs['image/wrist'])
        # the image follows the state: moving the arm changes the front view
        before = obs['image/front'].astype(int)
        q = env.arm_qpos()
        q[0] += 0.5
        for _ in range(10):
            obs, _, _ = env.step(np.concatenate([q, [0.0]]))
        assert np.abs(obs['image/front'].astype(int) - before).mean() > 0.5
    finally:
        env.close()


# ---- DART noise -------------------------------------------------------------------------------
def test_dart_noise_changes_executed_not_label(envs):
    env = envs['lift']
    env.reset(seed=4)
    noisy = make_expert('lift', noise=0.05, seed=0)
    clean = make_expert('lift', noise=0.0, seed=0)
    noisy.reset(env)
    clean.reset(env)
    for _ in range(5):
        a, c = noisy.act(env), clean.act(env)
        assert np.array_equal(a.label, c.label)
        assert np.array_equal(c.executed, c.label)
        d = a.executed[:N_ARM] - a.label[:N_ARM]
        assert np.all(d != 0) and np.abs(d).max() < 0.3
        assert a.executed[N_ARM] == a.label[N_ARM]          # gripper not perturbed
        env.step(a.executed)
    with pytest.raises(ValueError, match='noise'):
        make_expert('lift', noise=-0.1)


# ---- experts and tasks ------------------------------------------------------------------------
@pytest.mark.parametrize('task', TASKS)
def test_expert_succeeds_on_ten_seeds(envs, task):
    env = envs[task]
    expert = make_expert(task, seed=0)
    results = [run_episode(env, expert, seed)[0] for seed in range(100, 110)]
    assert all(results), results


def test_path_is_long_horizon_and_markers_turn_green(envs):
    env = envs['path']
    expert = make_expert('path', seed=0)
    env.reset(seed=5)
    expert.reset(env)
    red = env.model.geom_rgba[env._marker_geom[0]].copy()
    seen = []
    done = False
    while not done:
        _, ok, done = env.step(expert.act(env).executed)
        seen.append(env.info['progress'])
    assert ok and env.steps >= 150
    assert seen == sorted(seen) and seen[-1] == 5            # in order, all five
    green = env.model.geom_rgba[env._marker_geom]
    assert all(not np.allclose(g, red) for g in green)


def test_path_leaving_the_corridor_fails(envs):
    env = envs['path']
    env.reset(seed=6)
    off = env.p['start_ee'] + np.array([0.0, 0.0, 0.0])
    off[:2] *= 0.7                                            # 10+ cm toward the robot
    q = env.arm_pose_for(off)
    done = False
    for _ in range(40):
        _, ok, done = env.step(np.concatenate([q, [1.0]]))
        if done:
            break
    assert done and not ok and env.failure() == 'off_path'


def test_lift_needs_the_cube_held(envs):
    """A cube high in the air but not in the hand is no success."""
    env = envs['lift']
    env.reset(seed=7)
    i = env._cube_qpos
    state = env.get_state()
    env.data.qpos[i + 2] = 0.3
    env.step_physics(1)
    assert env.cube_pos()[2] > 0.2 and not env.success()
    env.set_state(state)
    assert not env.success()


def test_reach_around_expert_shows_both_modes(envs):
    env = envs['reach_around']
    expert = make_expert('reach_around', seed=1)
    modes = []
    for seed in range(8):
        ok, _ = run_episode(env, expert, seed)
        assert ok
        assert env.info['mode'] == expert.mode                # classified from the trajectory
        modes.append(expert.mode)
    assert modes.count('left') == modes.count('right') == 4


def _straight_to_target(env):
    """Drive the hand in a straight Cartesian line at the target; returns the failure."""
    target = env.p['target'].copy()
    done = False
    while not done:
        _, _, done = env.step(Expert.move_to(env, target, 1.0, speed=0.3))
    return env.failure()


def test_collision_fires_when_driving_straight_into_pillar(envs):
    env = envs['reach_around']
    for seed in (0, 1):
        env.reset(seed=seed)
        assert env.failure() is None and not env.info['collision']
        assert _straight_to_target(env) == 'collision'
        assert env.info['collision'] and not env.success()


def test_mode_averaged_actions_collide(envs):
    """Averaging a left and a right demonstration (what MSE regression does) hits the pillar."""
    env = envs['reach_around']
    for seed in (30, 31):
        seqs = []
        for mode in ('left', 'right'):
            ok, labels = run_episode(env, ReachAroundExpert(mode=mode), seed, record=True)
            assert ok and env.info['mode'] == mode
            seqs.append(labels)
        n = max(len(s) for s in seqs)
        padded = [np.vstack([s, np.repeat(s[-1:], n - len(s), axis=0)]) for s in seqs]
        mean = (padded[0] + padded[1]) / 2.0
        env.reset(seed=seed)
        for a in mean:
            _, ok, done = env.step(a)
            if done:
                break
        assert env.failure() == 'collision' and not ok


# ---- evaluation -------------------------------------------------------------------------------
def test_evaluate_expert_reports_rates_and_modes():
    res = evaluate_expert('reach_around', episodes=4, seed=0)
    assert res['success_rate'] == 1.0 and res['successes'] == 4
    assert res['modes'] == {'left': 2, 'right': 2}
    assert 0 < res['mean_steps'] <= res['max_steps']
    with pytest.raises(ValueError, match='episodes'):
        evaluate_expert('lift', episodes=0)


def test_expert_eval_cli_prints_json(capsys):
    assert expert_eval_main(['--task', 'lift', '--episodes', '2', '--noise', '0.02',
                             '--json']) == 0
    res = json.loads(capsys.readouterr().out)
    assert res['task'] == 'lift' and res['episodes'] == 2 and res['noise'] == 0.02
    assert res['successes'] + sum(res['failures'].values()) == 2


# ---- the robot description ----------------------------------------------------------------------
def test_env_takes_its_layout_from_the_robot_description(envs):
    robot = load_robot('sim_arm')
    env = envs['lift']
    assert env.robot.name == 'sim_arm' and env.scene == robot.sim.scenes['lift']
    assert env.joint_names == robot.joint_names and env.action_names == robot.action_names
    assert list(env.action_low) == robot.action_low
    assert list(env.action_high) == robot.action_high
    assert env.arm_joints == robot.arm_actions and env.finger_joints == robot.gripper.joints
    assert np.array_equal(env.home, robot.sim.home)
    # a description object works as well as a name, and gives the same episodes
    other = make_env('lift', robot, render=False)
    env.reset(seed=9)
    other.reset(seed=9)
    assert np.array_equal(env.get_state()[1:], other.get_state()[1:])


def test_sim_arm_seed_gives_the_same_episode_as_before(envs):
    """Seeds -> initial conditions of the sim arm are pinned (datasets and reports use them)."""
    env = envs['lift']
    env.reset(seed=3)
    assert np.allclose(env.p['cube_start'], [0.31541685008585235, -0.08422063788924809,
                                             0.4732408233033052], rtol=0, atol=1e-12)
    assert np.allclose(env.arm_qpos(), [-0.1578840246967102, 0.055590195927437525,
                                        2.156700916314277, 0.92930119329688865, 0.0],
                       rtol=0, atol=1e-9)


def test_a_task_the_robot_has_no_scene_for_names_the_file_and_its_tasks():
    robot = load_robot('sim_arm')
    robot.sim.scenes = {'lift': 'lift.xml'}
    for make in (make_env, make_expert):
        with pytest.raises(ValueError) as e:
            make('path', robot)
        assert robot.source in str(e.value) and "'path'" in str(e.value)
        assert 'lift' in str(e.value)
    assert robot_tasks(robot) == ('lift',) and robot_tasks('sim_arm') == TASKS
    robot.sim = None
    with pytest.raises(ValueError, match='no sim section'):
        make_env('lift', robot)


def test_expert_refuses_an_env_of_another_robot(envs):
    robot = load_robot('sim_arm')
    robot.name = 'other_arm'
    with pytest.raises(ValueError, match='other_arm'):
        make_expert('lift', robot).reset(envs['lift'])


def test_joint_positions_of_any_joints_in_any_order(envs):
    env = envs['lift']
    env.reset(seed=1)
    env.step(env.compose(env.home, 0.0))
    names = ['finger_right', 'elbow', 'base_yaw']
    pos, _, _ = env.joint_state()
    want = [pos[env.joint_names.index(n)] for n in names]
    assert np.array_equal(env.joint_positions(names), want)
    vel = env.joint_velocities(names)
    assert vel.shape == (3,) and np.array_equal(
        vel, [env.joint_state()[1][env.joint_names.index(n)] for n in names])
    assert env.joint_efforts(['shoulder']).shape == (1,)
    with pytest.raises(KeyError, match='nope'):
        env.joint_positions(['nope'])

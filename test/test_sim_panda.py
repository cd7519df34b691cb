"""The Panda-like arm in the sim (sim/panda.xml) and what every sim robot must agree with."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from il_ros.keys import image_key
from il_ros.robot import load_robot, robot_names
from il_ros.sim import make_env, make_expert
from il_ros.sim.env import scene_of
from il_ros.sim.kinematics import ArmIK

# the published Franka Emika Panda kinematics, Craig's modified DH convention
DH_A = [0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088]
DH_D = [0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0]
DH_ALPHA = [0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]
FLANGE_D = 0.107
TCP_D = 0.1034               # flange to the fingertip centre


def _sim_robots():
    return [n for n in robot_names() if load_robot(n).sim is not None]


@pytest.fixture(scope='module')
def env():
    e = make_env('lift', 'panda', render=False)
    yield e
    e.close()


def _dh(a, d, alpha, theta):
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([[ct, -st, 0, a],
                     [st * ca, ct * ca, -sa, -d * sa],
                     [st * sa, ct * sa, ca, d * ca],
                     [0, 0, 0, 1]])


def _dh_flange(q):
    t = np.eye(4)
    for i in range(7):
        t = t @ _dh(DH_A[i], DH_D[i], DH_ALPHA[i], q[i])
    return t @ _dh(0.0, FLANGE_D, 0.0, 0.0)


@pytest.mark.parametrize('name', _sim_robots())
def test_yaml_limits_match_the_mjcf_ranges(name):
    """The action limits live in the YAML and in the MJCF: they must not drift apart."""
    import mujoco
    from il_ros.resources import sim_asset
    robot = load_robot(name)
    for task in robot.sim.scenes:
        m = mujoco.MjModel.from_xml_path(str(sim_asset(scene_of(robot, task))))
        where = f'{robot.source} vs sim/{robot.sim.scenes[task]}'
        for a in robot.actions:
            act = m.actuator(a.name)
            if robot.gripper is not None and a.name == robot.gripper.action:
                assert tuple(act.ctrlrange) == (0.0, 1.0), where
                continue
            assert tuple(m.joint(a.name).range) == (a.low, a.high), f'{where}: {a.name}'
            assert tuple(act.ctrlrange) == (a.low, a.high), f'{where}: actuator {a.name}'
        if robot.gripper is not None:
            g = robot.gripper
            for j in g.joints:
                lo, hi = m.joint(j).range
                assert (lo, hi) == (min(g.open, g.closed), max(g.open, g.closed)), \
                    f'{where}: {j}'
        assert len(robot.sim.home) == len(robot.arm_actions)
        assert all(a.low <= h <= a.high for a, h in zip(
            [robot.action(n) for n in robot.arm_actions], robot.sim.home)), where


def test_panda_forward_kinematics_is_the_published_dh(env):
    rng = np.random.default_rng(0)
    m, d = env.model, env.data
    hand = m.body('panda_hand').id
    for _ in range(20):
        q = rng.uniform(env.action_low[:7], env.action_high[:7])
        d.qpos[env.ik.qpos_idx] = q
        import mujoco
        mujoco.mj_kinematics(m, d)
        t = _dh_flange(q)
        assert np.allclose(d.xpos[hand], t[:3, 3], atol=1e-9)
        # the hand is mounted turned by -pi/4 about the flange's z axis
        c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        assert np.allclose(d.xmat[hand].reshape(3, 3), t[:3, :3] @ rz, atol=1e-9)
        tcp = t[:3, 3] + t[:3, 2] * TCP_D
        assert np.allclose(d.site_xpos[env.ee_site], tcp, atol=1e-9)
    env.reset(seed=0)


def test_panda_layout_names_and_gripper(env):
    robot = load_robot('panda')
    assert env.robot.name == 'panda' and env.scene == 'panda_lift.xml'
    assert env.arm_joints == [f'panda_joint{i}' for i in range(1, 8)]
    assert env.finger_joints == ['panda_finger_joint1', 'panda_finger_joint2']
    assert env.action_names == robot.action_names and env.joint_names == robot.joint_names
    # the driver's joint order, with a joint the policy does not read
    pub = env.joint_positions(robot.sim.published_joints)
    assert pub.shape == (len(robot.sim.published_joints),)
    env.reset(seed=1)
    assert env.gripper_opening() == pytest.approx(0.04)          # starts open
    hold = env.compose(env.arm_qpos(), 1.0)
    for _ in range(10):
        env.step(hold)
    assert env.gripper_opening() < 0.003                         # closed on nothing
    f1, f2 = env.joint_positions(env.finger_joints)
    assert f1 == pytest.approx(f2, abs=1e-3)                     # symmetric fingers
    for _ in range(10):
        env.step(env.compose(env.arm_qpos(), 0.0))
    assert env.gripper_opening() == pytest.approx(0.04, abs=0.002)


def test_panda_holds_its_pose_under_gravity(env):
    env.reset(seed=2)
    q0 = env.arm_qpos()
    for _ in range(20):                                          # 1 s
        env.step(env.compose(q0, 0.0))
    assert np.abs(env.arm_qpos() - q0).max() < 2e-3
    # the actuators carry the arm: the shoulder (joint 2) effort reads like a torque
    assert abs(env.joint_efforts(['panda_joint2'])[0]) > 5.0


def test_panda_starts_with_the_hand_down_over_the_table(env):
    for seed in range(5):
        env.reset(seed=seed)
        ee, cube = env.ee_pos(), env.cube_pos()
        rot = env.data.site_xmat[env.ee_site].reshape(3, 3)
        assert rot[:, 2] @ [0, 0, -1] > 0.999
        assert 0.24 < ee[2] < 0.36 and 0.34 < ee[0] < 0.46
        assert 0.39 < cube[0] < 0.61 and abs(cube[1]) < 0.21


def test_null_space_posture_keeps_the_redundant_arm_near_home(env):
    env.reset(seed=3)
    target = env.ee_pos() + [0.05, 0.05, -0.05]
    q = env.data.qpos.copy()
    q[env.ik.qpos_idx[2]] += 0.6                                 # elbow swung away
    plain = ArmIK(env.model, env.arm_joints, site='ee')
    assert plain.posture_gain == 0.0
    a = plain.solve(q, target, iters=200, tol=0.0)
    b = env.ik.solve(q, target, iters=200, tol=0.0)
    for sol in (a, b):
        qq = q.copy()
        qq[env.ik.qpos_idx] = sol
        assert np.linalg.norm(env.ik.site_pose(qq)[0] - target) < 1e-3
    # joint 3 swings the elbow about the shoulder-wrist line (the free degree): without the
    # posture term it stays swung away, with it it returns to home
    assert abs(a[2] - env.home[2]) > 0.2 and abs(b[2] - env.home[2]) < 0.05
    # the 5-joint arm has no null space: no posture term
    assert make_env('lift', render=False).ik.posture_gain == 0.0


def test_panda_lift_expert_succeeds_and_mirrors(env):
    mirror = make_env('lift', 'panda', render=False)
    expert = make_expert('lift', 'panda', noise=0.02, seed=0)
    twin = make_expert('lift', 'panda', noise=0.02, seed=0)
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        expert.reset(env)
        twin.reset(mirror)
        done = ok = False
        while not done:
            mirror.set_state(env.get_state())
            a, b = expert.act(env), twin.act(mirror)
            assert np.array_equal(a.executed, b.executed)
            _, ok, done = env.step(a.executed)
        assert ok, (seed, env.failure(), env.info)
    mirror.close()


def test_panda_renders_both_cameras_at_its_native_size():
    robot = load_robot('panda')
    cam = robot.camera('front')
    e = make_env('lift', 'panda', cameras=('front', 'wrist'), image_size=(cam.height, cam.width))
    try:
        obs = e.observe()
        for c in ('front', 'wrist'):
            img = obs[image_key(c)]
            assert img.shape == (240, 320, 3) and img.std() > 10
        assert not np.array_equal(obs['image/front'], obs['image/wrist'])
    finally:
        e.close()


def test_panda_lift_front_camera_sees_the_cube_anywhere_it_starts():
    """panda_lift.xml aims its front camera at the cube's start area.

    In the policy's 84x84 input the cube covers 43-62 pixels at the corners of that area
    (17-29 with path's wider view).
    """
    from il_ros.images import fit, Preprocess
    from il_ros.sim.lift import CUBE_HALF, layout_for
    lay = layout_for('panda')
    e = make_env('lift', 'panda', cameras=('front',), image_size=(240, 320))
    try:
        e.reset(seed=0)
        i = e._cube_qpos
        for x in lay.cube_x:
            for y in lay.cube_y:
                e.data.qpos[i:i + 7] = (x, y, CUBE_HALF, 1.0, 0.0, 0.0, 0.0)     # yaw 0
                mujoco.mj_forward(e.model, e.data)
                img = fit(e.render('front'), Preprocess(size=(84, 84))).astype(int)
                red = (img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)
                assert red.sum() >= 35, (x, y, int(red.sum()))
    finally:
        e.close()


def test_panda_runs_every_task_through_the_same_experts():
    from il_ros.sim import TASKS
    from il_ros.sim.registry import robot_tasks
    assert robot_tasks('panda') == TASKS
    for task, seeds in (('reach_around', (0, 1)), ('path', (0,))):
        e = make_env(task, 'panda', render=False)
        expert = make_expert(task, 'panda', seed=0)
        modes = []
        for seed in seeds:
            e.reset(seed=seed)
            expert.reset(e)
            done = ok = False
            while not done:
                _, ok, done = e.step(expert.act(e).executed)
            assert ok, (task, seed, e.failure(), e.info)
            modes.append(e.info['mode'])
        if task == 'reach_around':
            assert sorted(modes) == ['left', 'right']
        e.close()


def test_supervisor_and_expert_eval_take_the_robot(capsys):
    import json
    from il_ros.sim.expert_eval import main as expert_eval_main
    from il_ros.sim.supervisor import Supervisor
    env = make_env('lift', 'panda', render=False)
    expert = make_expert('lift', 'panda', seed=0)
    sup = Supervisor('lift', robot='panda')
    assert sup.robot.name == 'panda'
    env.reset(seed=5)
    expert.reset(env, seed=5)
    executed, events = None, []
    for k in range(40):                  # the expert itself is never taken over
        s = sup.step(env.get_state(), executed)
        events += [s.event] if s.event else []
        executed = expert.act(env).label
        env.step(executed)
    assert events == [] and sup.human_steps == 0
    # a policy that turns the base away is
    for k in range(10):
        s = sup.step(env.get_state(), executed)
        events += [s.event] if s.event else []
        executed = expert.act(env).label + np.r_[0.3, np.zeros(7)]
        env.step(s.label if s.in_control else executed)
    assert events == ['takeover'] and s.reason == 'deviation'
    sup.close()
    assert expert_eval_main(['--task', 'lift', '--robot', 'panda', '--episodes', '1',
                             '--json']) == 0
    res = json.loads(capsys.readouterr().out)
    assert res['robot'] == 'panda' and res['successes'] == 1


@pytest.mark.parametrize('robot, descend, off_cm, expected', [
    ('sim_arm', None, 1.4, 1.0), ('sim_arm', None, 1.6, 0.0),    # the default: 1.5 cm threshold
    ('panda', None, 1.4, 1.0), ('panda', None, 1.6, 0.0),
    ('panda', (0.01, 0.03), 0.5, 1.0), ('panda', (0.01, 0.03), 2.0, 0.5),     # a ramp
    ('panda', (0.01, 0.03), 3.1, 0.0)])
def test_lift_expert_descends_by_the_robots_rule(monkeypatch, robot, descend, off_cm,
                                                 expected):
    from il_ros.sim import lift
    from il_ros.sim.expert import lead_time
    if descend is not None:
        monkeypatch.setitem(lift.LAYOUTS, robot, lift.LAYOUTS[robot]._replace(descend=descend))
    e = make_env('lift', robot, render=False)
    try:
        e.reset(seed=0)
        cube = e.cube_pos()
        hand = cube + [off_cm / 100, 0.0, lift._PREGRASP]     # at the pre-grasp height, off in x
        e.data.qpos[e._arm_qpos_idx] = e.arm_pose_for(hand)
        mujoco.mj_forward(e.model, e.data)
        err = np.linalg.norm(e.ee_pos()[:2] - cube[:2])        # the IK lands within 1 mm
        assert np.allclose(e.ee_pos(), hand, atol=1e-3)
        if 0.0 < expected < 1.0:            # on the ramp: the rate at the hand's actual error
            expected = (descend[1] - err) / (descend[1] - descend[0])
            assert expected == pytest.approx(0.5, abs=0.05)
        expert = make_expert('lift', robot, seed=0)
        expert.reset(e)
        goals = []

        def capture(env, goal, gripper, **kw):       # the Cartesian goal of this step
            goals.append(np.asarray(goal, dtype=float))
            return np.zeros(len(env.action_names))

        expert.move_to = capture
        expert.act(e)
        drop = e.ee_pos()[2] - goals[0][2]
        if expected == 0.0:     # not aligned: the goal is over the cube, at the pre-grasp height
            assert np.allclose(goals[0], cube + [0.0, 0.0, lift._PREGRASP])
        else:
            assert drop == pytest.approx(expected * lift.LiftExpert.slow * lead_time(e), rel=0.05)
    finally:
        e.close()


@pytest.mark.parametrize('robot', ['sim_arm', 'panda'])
def test_lift_expert_closes_at_the_robots_grasp_depth(robot):
    """The lift expert closes its fingers within 1.2 cm above the robot's ``grasp_dz``.

    The Panda's is the cube's centre, so its pads (2.2 cm tall, about the ee site) cover it.
    """
    from il_ros.sim import lift
    depth = lift.layout_for(robot).grasp_dz
    assert depth == {'sim_arm': 0.010, 'panda': 0.0}[robot]
    e = make_env('lift', robot, render=False)
    try:
        e.reset(seed=1004)
        expert = make_expert('lift', robot, seed=0)
        expert.reset(e)
        for _ in range(e.max_steps):
            action = expert.act(e).executed
            if action[-1] > 0.5:
                break
            e.step(action)
        else:
            pytest.fail('the lift expert never closed its fingers')
        dz = e.ee_pos()[2] - e.cube_pos()[2]
        assert depth <= dz < depth + 0.012 + 1e-3
        if robot == 'panda':
            pad = e.model.geom('pad_left').id
            half = e.model.geom_size[pad][2]
            z = e.data.geom_xpos[pad][2]
            assert z - half < e.cube_pos()[2] < z + half
    finally:
        e.close()

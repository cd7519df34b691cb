"""In-process evaluation in the real MuJoCo sim (il_ros.training.evaluate).

Scripted policies with known outcomes check the bookkeeping (success, steps, failure
reasons, modes, seeds), through the control loop (the default) and, where it differs, the
direct path; a far pose is rate-limited through the loop and not directly; a NaN ends the
episode as a latched fault. A real (untrained) Policy checkpoint checks evaluate_checkpoint
both ways, including the refusal of a checkpoint made for another robot.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from il_ros.models import build_policy, CheckpointMismatch, RobotSpec, save_checkpoint
from il_ros.models.presets import preset
from il_ros.sim import make_env, make_expert
from il_ros.sim.reach_around import ReachAroundExpert
from il_ros.training.evaluate import EVAL_SEED, evaluate, evaluate_checkpoint, format_result

torch.set_num_threads(2)


class ExpertPolicy:
    """The scripted expert as a policy: it reads the privileged state of the env it is given."""

    def __init__(self, env, expert):
        self.env, self.expert, self.resets = env, expert, []

    def reset(self, seed=None):
        self.resets.append(seed)
        self.expert.reset(self.env)

    def act(self, obs):
        assert set(obs) >= {'joint_pos', 'joint_vel'}
        return self.expert.act(self.env).executed


class ConstantPolicy:
    """Always the same action (a NaN one ends the episode)."""

    def __init__(self, action):
        self.action = np.asarray(action, float)

    def reset(self):
        pass

    def act(self, obs):
        return self.action


def test_expert_succeeds_with_episode_bookkeeping():
    env = make_env('lift', render=False)
    policy = ExpertPolicy(env, make_expert('lift', seed=0))
    res = evaluate(policy, 'lift', episodes=2, env=env, progress=False)
    assert res['loop'] is True and res['faults'] == 0 and res['hold_ticks'] == 0
    assert res['ticks'] == res['policy_ticks'] == sum(e['steps'] for e in res['per_episode'])
    assert res['success_rate'] == 1.0 and res['successes'] == 2
    assert res['failures'] == {} and res['modes'] == {'none': 2}
    assert [e['seed'] for e in res['per_episode']] == [EVAL_SEED, EVAL_SEED + 1]
    assert policy.resets == [EVAL_SEED, EVAL_SEED + 1]       # reset (seeded) every episode
    assert 20 < res['mean_steps'] < res['max_steps'] == env.max_steps
    assert res['mean_steps_success'] == res['mean_steps']
    assert res['cpu_s'] >= 0 and res['wall_s'] > 0 and res['act_ms'] > 0
    assert 'lift: success 100.0% (2/2' in format_result(res)
    assert 'through the control loop' in format_result(res)
    direct = evaluate(ExpertPolicy(env, make_expert('lift', seed=0)), 'lift', episodes=2,
                      env=env, progress=False, direct=True)
    assert direct['loop'] is False and 'safety' not in direct
    assert direct['success_rate'] == 1.0 and 'direct' in format_result(direct)


def test_path_reports_waypoints_reached():
    """On path, each episode records the waypoints reached and the summary their mean.

    The expert reaches all 5; a policy that holds still leaves the corridor with none.
    """
    env = make_env('path', render=False)
    res = evaluate(ExpertPolicy(env, make_expert('path', seed=0)), 'path', episodes=1,
                   env=env, progress=False)
    assert res['success_rate'] == 1.0
    assert res['per_episode'][0]['progress'] == 5 and res['mean_progress'] == 5.0
    drift = np.r_[env.arm_qpos() + 0.3, 0.0]           # far from the start: off the path
    res = evaluate(ConstantPolicy(drift), 'path', episodes=2, env=env, progress=False)
    assert res['failures'] == {'off_path': 2} and res['mean_progress'] == 0.0
    lift = evaluate(ConstantPolicy(np.zeros(6)), 'lift', episodes=1, progress=False,
                    render=False)
    assert 'mean_progress' not in lift and 'progress' not in lift['per_episode'][0]


def test_modes_collisions_timeouts_and_nonfinite_actions():
    env = make_env('reach_around', render=False)
    left = ExpertPolicy(env, ReachAroundExpert(mode='left', seed=0))
    res = evaluate(left, 'reach_around', episodes=2, env=env, progress=False)
    assert res['success_rate'] == 1.0
    assert res['modes'] == {'left': 2} and res['modes_success'] == {'left': 2}

    class Straight(ConstantPolicy):          # joint-space jump to the target: hits the pillar
        def act(self, obs):
            return np.concatenate([env.arm_pose_for(env.p['target'].copy()), [1.0]])
    res = evaluate(Straight(None), 'reach_around', episodes=2, env=env, progress=False)
    assert res['success_rate'] == 0.0 and res['failure_rates'] == {'collision': 1.0}

    env.reset(seed=5)
    hold = np.concatenate([env.arm_qpos(), [1.0]])           # stays at its start: times out
    res = evaluate(ConstantPolicy(hold), 'reach_around', episodes=1, seed=5, env=env,
                   max_steps=15, progress=False)
    assert res['failures'] == {'timeout': 1} and res['per_episode'][0]['steps'] == 15
    assert res['per_episode'][0]['seed'] == 5


def test_a_nan_policy_ends_as_a_latched_fault():
    """A NaN ends the episode at once, as a latched fault (not at the timeout).

    Directly it ends as nonfinite_action.
    """
    env = make_env('reach_around', render=False)
    nan = ConstantPolicy([np.nan] * 6)
    res = evaluate(nan, 'reach_around', episodes=2, env=env, progress=False)
    assert res['failures'] == {'fault_nonfinite_chunk': 2} and res['mean_steps'] == 0
    assert res['faults'] == 2 and res['fault_reasons'] == {'nonfinite_chunk': 2}
    assert res['chunks']['nonfinite'] == 2
    assert 'non-finite' in res['per_episode'][0]['detail']

    class LateNan(ConstantPolicy):          # holds its pose for 5 steps, then NaN
        def reset(self):
            self.n = 0

        def act(self, obs):
            self.n += 1
            return np.r_[obs['joint_pos'][:5], 0.0] if self.n <= 5 else self.action
    res = evaluate(LateNan([np.nan] * 6), 'reach_around', episodes=1, env=env,
                   progress=False)
    assert res['failures'] == {'fault_nonfinite_chunk': 1} and res['mean_steps'] == 5
    res = evaluate(nan, 'reach_around', episodes=1, env=env, progress=False, direct=True)
    assert res['failures'] == {'nonfinite_action': 1} and res['mean_steps'] == 0


def test_the_loop_rate_limits_a_far_pose_and_direct_does_not():
    """A far pose is rate-limited through the loop, and sent as is directly.

    Through the loop every sent command moves each arm joint at most the node's default step
    (0.1 rad per tick) and the result counts the rate-limited ticks.
    """
    env = make_env('lift', render=False)
    env.reset(seed=EVAL_SEED)
    start = env.arm_qpos()
    far = np.r_[np.clip(start + 1.0, env.action_low[:5], env.action_high[:5]), 0.0]
    sent = []
    step = env.step
    env.step = lambda a: (sent.append(np.array(a, float)), step(a))[1]
    res = evaluate(ConstantPolicy(far), 'lift', episodes=1, env=env, max_steps=8,
                   progress=False)
    cmds = np.array(sent)
    assert len(cmds) == 8 and res['loop'] is True
    moves = np.abs(np.diff(np.vstack([start, cmds[:, :5]]), axis=0))
    assert moves.max() <= 0.1 + 1e-9
    assert res['safety']['rate_limited'] == 8 and res['safety']['ok'] == 0
    assert res['chunks']['jump'] >= 1
    sent.clear()
    res = evaluate(ConstantPolicy(far), 'lift', episodes=1, env=env, max_steps=8,
                   progress=False, direct=True)
    assert np.allclose(sent[0], far) and 'safety' not in res


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='unknown task'):
        evaluate(ConstantPolicy([0] * 6), 'juggle', episodes=1)
    with pytest.raises(ValueError, match='episodes'):
        evaluate(ConstantPolicy([0] * 6), 'lift', episodes=0)


def _stats(action_dim: int, proprio_dim: int) -> dict:
    vec = lambda n, lo, hi: {'min': np.full(n, lo), 'max': np.full(n, hi),  # noqa: E731
                             'mean': np.zeros(n), 'std': np.ones(n)}
    return {'action': vec(action_dim, -1.0, 1.0), 'joint_pos': vec(proprio_dim, -2.0, 2.0),
            'image/front': {'min': np.zeros(3), 'max': np.ones(3), 'mean': np.full(3, 0.5),
                            'std': np.full(3, 0.25)}}


def _checkpoint(path, spec: RobotSpec):
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8, 8, 8], 'num_kp': 8,
                                      'feat_dim': 16}, crop=28)
    policy = build_policy(cfg, spec, _stats(spec.action_dim, spec.proprio_dim))
    return save_checkpoint(policy, path, extra={'step': 7})


def test_evaluate_checkpoint_runs_a_real_policy(tmp_path):
    env = make_env('lift', render=False)
    spec = RobotSpec(env.joint_names, env.action_names, 6, 7, ['front'], (32, 32), 20.0)
    path = _checkpoint(tmp_path / 'ok', spec)
    for direct in (False, True):
        res = evaluate_checkpoint(path, 'lift', episodes=2, max_steps=10, progress=False,
                                  direct=direct)
        assert res['episodes'] == 2 and res['step'] == 7 and res['weights'] == 'ema'
        assert res['device'] == 'cpu'                   # the default, as the controller's
        assert res['loop'] is not direct
        assert 0.0 <= res['success_rate'] <= 1.0
        assert sum(res['failures'].values()) + res['successes'] == 2
        assert all(1 <= e['steps'] <= 10 for e in res['per_episode'])
        assert res['act_ms'] > 0


def test_eval_cli_direct_flag(tmp_path, capsys):
    """``il-ros eval`` runs through the loop; ``--direct`` does not, and not over ROS."""
    import json

    from il_ros.train_cli import main
    env = make_env('lift', render=False)
    spec = RobotSpec(env.joint_names, env.action_names, 6, 7, ['front'], (32, 32), 20.0)
    path = _checkpoint(tmp_path / 'ok', spec)
    args = ['eval', '--checkpoint', str(path), '--task', 'lift', '--episodes', '1',
            '--max-steps', '3', '--json']
    for extra, loop in (([], True), (['--direct'], False)):
        assert main(args + extra) == 0
        assert json.loads(capsys.readouterr().out)['loop'] is loop
    assert main(args + ['--direct', '--transport', 'ros']) == 2
    assert '--direct is for --transport inproc' in capsys.readouterr().err


def test_evaluate_checkpoint_refuses_another_robot(tmp_path):
    other = RobotSpec([f'j{i}' for i in range(7)], [f'a{i}' for i in range(7)], 7, 7,
                      ['front'], (32, 32), 20.0)
    path = _checkpoint(tmp_path / 'other', other)
    with pytest.raises(CheckpointMismatch) as e:
        evaluate_checkpoint(path, 'lift', episodes=1, progress=False)
    msg = str(e.value)
    assert 'action_dim 7 != 6' in msg and 'joint_names' in msg and 'action_names' in msg
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        evaluate_checkpoint(tmp_path / 'missing', 'lift', episodes=1)

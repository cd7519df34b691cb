"""The episode runners: il_ros.sim.runner and il_ros.sim.loop_episode.SimLoop.

The runner on a scripted env (reset, step, judge, summarize); SimLoop (the control loop in
process) on the real sim.
"""
import numpy as np

from il_ros.sim.runner import (EpisodeResult, FAILURE_NONFINITE, FAILURE_TIMEOUT, run_episode,
                               run_episodes, summarize_episodes)


class ScriptedEnv:
    """An env whose episode succeeds or fails at given steps (max_steps 10)."""

    max_steps = 10

    def __init__(self, succeed_at=None, fail_at=None, fail_reason='collision', mode=None,
                 progress=None):
        self.succeed_at, self.fail_at, self.fail_reason = succeed_at, fail_at, fail_reason
        self.mode, self.progress = mode, progress
        self.seeds, self.steps, self.actions = [], 0, []

    def reset(self, seed=None):
        self.seeds.append(seed)
        self.steps = 0
        return {'t': 0}

    def success(self):
        return self.succeed_at is not None and self.steps >= self.succeed_at

    def failure(self):
        return self.fail_reason if self.fail_at is not None and self.steps >= self.fail_at \
            else None

    def step(self, action):
        self.actions.append(action)
        self.steps += 1
        ok = self.success()
        return {'t': self.steps}, ok, ok or self.failure() is not None \
            or self.steps >= self.max_steps

    @property
    def info(self):
        out = {'mode': self.mode}
        if self.progress is not None:
            out['progress'] = self.progress
        return out


def test_success_wins_over_a_failure_on_the_same_step():
    env = ScriptedEnv(succeed_at=3, fail_at=3, mode='left')
    res = run_episode(env, lambda obs: np.zeros(2), seed=7)
    assert res == EpisodeResult(seed=7, success=True, steps=3, failure=None, mode='left')
    assert env.seeds == [7]


def test_task_failure_timeout_and_step_limit():
    res = run_episode(ScriptedEnv(fail_at=4), lambda obs: np.zeros(2), seed=0)
    assert (res.success, res.steps, res.failure) == (False, 4, 'collision')
    res = run_episode(ScriptedEnv(), lambda obs: np.zeros(2), seed=0)
    assert (res.success, res.steps, res.failure) == (False, 10, FAILURE_TIMEOUT)
    res = run_episode(ScriptedEnv(), lambda obs: np.zeros(2), seed=0, max_steps=4)
    assert (res.steps, res.failure) == (4, FAILURE_TIMEOUT)
    res = run_episode(ScriptedEnv(), lambda obs: np.zeros(2), seed=0, max_steps=99)
    assert res.steps == 10                      # capped by the task's own limit


def test_nonfinite_action_ends_the_episode_before_stepping():
    env = ScriptedEnv()
    res = run_episode(env, lambda obs: np.array([0.0, np.nan]) if obs['t'] == 2
                      else np.zeros(2), seed=0)
    assert (res.success, res.steps, res.failure) == (False, 2, FAILURE_NONFINITE)
    assert len(env.actions) == 2


def test_reset_hook_runs_after_the_env_reset_with_the_seed():
    env, calls = ScriptedEnv(succeed_at=1), []
    run_episodes(env, lambda obs: np.zeros(2), [5, 6],
                 reset=lambda seed: calls.append((seed, list(env.seeds))))
    assert calls == [(5, [5]), (6, [5, 6])]


def test_summary_counts_failures_modes_and_progress():
    def act(obs):
        return np.zeros(2)
    results = [run_episode(ScriptedEnv(succeed_at=2, mode='left', progress=5), act, s)
               for s in (0, 1)]
    results.append(run_episode(ScriptedEnv(fail_at=6, progress=2), act, 2))
    per_episode = [r.to_dict() for r in results]
    assert per_episode[2] == {'seed': 2, 'success': False, 'steps': 6, 'failure': 'collision',
                              'mode': 'none', 'progress': 2}
    s = summarize_episodes('path', 0, per_episode, 10)
    assert (s['episodes'], s['successes'], s['mean_steps'], s['mean_steps_success']) == \
        (3, 2, 10 / 3, 2.0)
    assert s['failures'] == {'collision': 1} and s['modes'] == {'left': 2, 'none': 1}
    assert s['modes_success'] == {'left': 2} and s['mean_progress'] == 4.0


class _Hold:
    """Commands the pose it started the episode in (gripper open); counts its resets."""

    def __init__(self, env, shape=6):
        self.env, self.shape, self.resets = env, shape, []

    def reset(self, seed=None):
        self.resets.append(seed)
        self.pose = np.r_[self.env.arm_qpos(), 0.0][:self.shape]

    def act(self, obs):
        return self.pose


def test_sim_loop_holds_for_a_human_without_a_command_and_resets_at_hand_back():
    """A claim without a command HOLDs: the env is stepped with the last command sent.

    The explicit hand-back gives control back to a freshly reset policy.
    """
    from il_ros.control.loop_types import HumanInput
    from il_ros.sim import make_env
    from il_ros.sim.loop_episode import SimLoop
    env = make_env('lift', render=False)
    policy = _Hold(env)
    loop = SimLoop(env, policy)
    sent, ticks = [], []
    step = env.step
    env.step = lambda a: (sent.append(np.array(a)), step(a))[1]

    def human(obs):
        k = len(ticks)
        return (HumanInput(held=True) if 3 <= k < 6 else
                HumanInput(held=False) if k == 6 else None)
    res = loop.run_episode(7, max_steps=9, human=human,
                           on_tick=lambda obs, r: ticks.append((r.source, r.reason)))
    assert (res.steps, res.failure) == (9, FAILURE_TIMEOUT) and policy.resets == [7, None]
    assert [s for s, _ in ticks] == ['policy'] * 3 + ['hold'] * 3 + ['policy'] * 3
    assert ticks[3] == ('hold', 'no_human_command')
    assert all(np.array_equal(sent[k], sent[2]) for k in (3, 4, 5))
    stats = loop.stats()
    assert stats['hold_ticks'] == 3 and stats['hold_reasons'] == {'no_human_command': 3}
    loop.close()
    env.close()


def test_sim_loop_a_tick_that_publishes_nothing_holds_the_targets():
    """Nothing to publish: the env is stepped on its current targets.

    Chunks of the wrong shape are rejected; before any command was sent and with the gripper
    unmeasured, HOLD has nothing to send. The third rejected chunk in a row latches a fault
    that ends the episode.
    """
    from il_ros.sim import make_env
    from il_ros.sim.loop_episode import SimLoop
    env = make_env('lift', render=False)
    loop = SimLoop(env, _Hold(env, shape=5))
    res = loop.run_episode(3)
    end = env.arm_qpos()
    start = env.reset(seed=3)['joint_pos']
    assert (res.success, res.steps, res.failure) == (False, 2, 'fault_invalid_chunks')
    assert 'invalid chunks in a row' in res.detail
    assert 0 < np.abs(end - start[:5]).max() < 0.02       # stepped, but held its targets
    assert loop.stats()['chunks']['shape'] == 3
    loop.close()
    env.close()


class _Chunks:
    """A Ta = 4 chunk policy: plan n's action i moves base_yaw by 0.001 * (10 n + i)."""

    class cfg:                      # noqa: N801 - stands in for a PolicyConfig
        action_exec = 4

    def __init__(self, env):
        self.env = env

    def reset(self, seed=None):
        self.n, self.base = 0, np.r_[self.env.arm_qpos(), 0.0]

    def observe(self, obs):
        pass

    def plan(self):
        chunk = np.tile(self.base, (4, 1))
        chunk[:, 0] += 0.001 * (10 * self.n + np.arange(4))
        self.n += 1
        return chunk


def test_sim_loop_plans_ahead_as_the_node_does():
    """A chunk planned ahead runs from its second action, as on the node.

    With the node's auto plan-ahead (replan below 3 queued actions) a plan made ahead is
    collected at the next tick, as from the node's worker thread. An InlineWorker hands it
    over at once: chunks run from their first action.
    """
    from il_ros.control.worker import InlineWorker
    from il_ros.sim import make_env
    from il_ros.sim.loop_episode import SimLoop
    env = make_env('lift', render=False)
    for worker, want in ((None, [0, 1, 2, 11, 12, 21, 22, 31]),
                         (InlineWorker(), [0, 1, 10, 11, 20, 21, 30, 31])):
        policy = _Chunks(env)
        loop = SimLoop(env, policy, worker=worker)
        sent = []
        loop.run_episode(0, max_steps=8, on_tick=lambda obs, r: sent.append(r.command[0]))
        got = np.round((np.array(sent) - policy.base[0]) * 1000).astype(int).tolist()
        assert got == want
        loop.close()
    env.close()

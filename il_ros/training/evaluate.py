"""Roll a policy out in the MuJoCo sim, in-process, and summarize what happened.

Seeds: episode ``k`` resets the env with ``seed + k``; the default base seed is
:data:`EVAL_SEED` = 1000. Demonstrations are recorded from seed 0 up (``il-ros record
--seed``, ``sim_robot`` parameter ``seed``: episode k uses seed + k), so evaluation never
replays a training demo's initial conditions as long as fewer than 1000 demos were recorded
from seed 0. The scripted experts were checked on seeds 1000-1299 (docs/sim.md).

By default the policy runs as deployed: through the controller's
:class:`~il_ros.control.loop.ControlLoop` (:class:`il_ros.sim.loop_episode.SimLoop`), with
the node's default safety filter, step limits, chunk guard, action queue and plan-ahead rule,
so in-process success measures what the controller node would do on the same seeds. Its
cameras render at their native size and reach the policy as the controller's would: through
their encoding (JPEG included), fitted with the checkpoint's preprocessing, frames repeated
for a camera slower than the loop (:mod:`il_ros.sim.camera_feed`). The
policy is reset (seeded) at the start of every episode and run under ``torch.no_grad`` in
eval mode. A NaN from the policy latches the loop's fault and ends the episode as a failure
``fault_nonfinite_chunk``; repeated invalid chunks (or inference errors) as
``fault_invalid_chunks``; an episode that reaches the step limit fails as ``timeout``.

``direct=True`` (``il-ros eval --direct``) calls ``policy.act`` every step and sends its
action to the env unfiltered: no step limit, chunk guard or queue, which is NOT what
deployment does (faster, and it shows the policy alone). There a non-finite action ends the
episode as ``nonfinite_action``. The episodes of both run in :mod:`il_ros.sim.runner`'s
judge.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from il_ros import keys
from il_ros.sim.registry import make_env, TASKS
from il_ros.sim.runner import run_episodes, run_seeds, step_limit, summarize_episodes

__all__ = ['EVAL_SEED', 'checkpoint_spec', 'evaluate', 'evaluate_checkpoint', 'format_result',
           'summarize_episodes']

EVAL_SEED = keys.EVAL_SEED
"""Base seed of evaluation episodes (demos use seeds below it; see the module doc)."""


def _env_args(policy, cameras, image_size, control_rate_hz, robot=None) -> dict:
    """Env settings: explicit arguments first, then the policy's RobotSpec, then defaults.

    Cameras render at their native size in the robot description ``robot`` (a name, a path
    or a RobotDescription; None: the sim arm), the policy's view fitted from it
    (:class:`~il_ros.sim.camera_feed.CameraFeed`), unless ``image_size`` is given.
    """
    from il_ros.robot import DEFAULT_ROBOT, load_robot, RobotDescription
    from il_ros.sim.camera_feed import native_size
    spec = getattr(policy, 'spec', None)
    cams = cameras if cameras is not None else getattr(spec, 'cameras', None)
    rate = control_rate_hz if control_rate_hz is not None else getattr(
        spec, 'control_rate_hz', None)
    out = {}
    if cams:
        out['cameras'] = tuple(cams)
    size = image_size
    if size is None and cams:
        desc = robot if isinstance(robot, RobotDescription) else load_robot(
            robot or DEFAULT_ROBOT)
        size = native_size(desc, cams)
    if size:
        out['image_size'] = tuple(int(v) for v in size)
    if rate:
        out['control_dt'] = 1.0 / float(rate)
    return out


def _reset(policy, seed: int) -> None:
    """Reset for a new episode, seeding the policy's sampling when it takes a seed."""
    try:
        policy.reset(seed=seed)
    except TypeError:
        policy.reset()


def _run_direct(env, policy, seeds, limit, progress) -> tuple[list, dict]:
    """The episodes with ``policy.act`` driving the env unfiltered; (results, extra).

    The policy sees the cameras as through the control loop (the same CameraFeed).
    """
    from il_ros.sim.camera_feed import CameraFeed
    timing = {'act_s': 0.0, 'calls': 0}
    feed = CameraFeed.of(env, policy)

    def act(obs):
        t0 = time.perf_counter()
        action = policy.act(feed(obs, env.time))
        timing['act_s'] += time.perf_counter() - t0
        timing['calls'] += 1
        return action

    def reset(seed):
        feed.reset()
        _reset(policy, seed)

    results = run_episodes(env, act, seeds, limit, reset=reset, progress=progress)
    return results, {'loop': False,
                     'act_ms': round(1e3 * timing['act_s'] / max(timing['calls'], 1), 3)}


def _run_loop(env, policy, seeds, limit, progress, loop_config, worker
              ) -> tuple[list, dict]:
    """The episodes through the control loop (see the module doc); (results, extra)."""
    from il_ros.sim.loop_episode import SimLoop
    runner = SimLoop(env, policy, loop_config, name=type(policy).__name__, worker=worker)
    try:
        results = run_seeds(seeds, lambda s: runner.run_episode(s, limit), progress)
    finally:
        runner.close()
    stats = runner.stats()
    return results, {'loop': True, 'act_ms': stats.pop('tick_ms') or 0.0, **stats}


def evaluate(policy, task: str, episodes: int = 50, seed: int = EVAL_SEED,
             render: bool = True, progress: bool = True, cameras=None, image_size=None,
             control_rate_hz: float | None = None, max_steps: int | None = None,
             env=None, direct: bool = False, loop_config=None, worker=None,
             robot=None) -> dict:
    """Run ``policy`` for ``episodes`` episodes of ``task`` and summarize.

    Args:
        policy: a Policy, or anything with ``reset()`` and ``act(obs) -> (A,) array``; a
            torch module is put in eval mode for the rollouts and back in its previous mode
            after.
        task: a sim task name (``il_ros.sim.TASKS``).
        episodes: number of episodes (> 0).
        seed: episode k uses env seed ``seed + k`` (default :data:`EVAL_SEED`).
        render: render camera images (needed by any policy that looks at images).
        progress: show a tqdm bar on stderr.
        cameras, control_rate_hz: env settings; default to ``policy.spec``.
        image_size: (H, W) the env renders at; default: the cameras' native size in the
            robot description. Either way the policy sees each frame as the controller
            would: through its camera's encoding, fitted with the policy's preprocessing
            (:class:`~il_ros.sim.camera_feed.CameraFeed`).
        max_steps: cap on control steps per episode (default: the task's own limit).
        env: an existing env of ``task`` to run in instead of making one (left open; the
            env settings above are then ignored).
        direct: call ``policy.act`` and send its actions unfiltered, not through the
            control loop (not what deployment does; see the module doc).
        loop_config: the control loop's :class:`~il_ros.control.loop_types.LoopConfig`
            (default: the node's defaults, enabled at the env's rate).
        worker: the loop's inference worker (default
            :class:`~il_ros.sim.loop_episode.NextTickWorker`, see there).
        robot: the sim robot (a name, a YAML path or a RobotDescription; None: the sim
            arm), passed to ``make_env`` when given; its cameras' native sizes set the
            render size.

    Returns:
        A JSON-able dict: 'task', 'episodes', 'seed', 'success_rate', 'successes',
        'mean_steps', 'mean_steps_success', 'max_steps', 'failures' ({reason: count}),
        'failure_rates' ({reason: fraction}, e.g. 'collision' on reach_around), 'modes'
        ({mode: count}, None counted as 'none'), 'modes_success', 'loop' (True: through the
        control loop; False: direct), 'act_ms' (mean time per step in the policy, and with
        the loop in the loop's tick), 'cpu_s' (process CPU seconds), 'wall_s', 'per_episode'
        (a list of {'seed', 'success', 'steps', 'failure', 'mode'} and 'progress' where the
        task has sub-goals, 'detail' where a fault ended it, see
        :class:`~il_ros.sim.runner.EpisodeResult`), and 'mean_progress'. Through the loop
        also its counters (:meth:`~il_ros.sim.loop_episode.SimLoop.stats`): 'safety'
        ({'rate_limited': ticks, ...}), 'chunks', 'faults', 'fault_reasons', 'hold_ticks',
        'hold_reasons', 'ticks', 'policy_ticks', 'underruns', 'worker_errors'...
    """
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    own_env = env is None
    if own_env:
        env = make_env(task, render=render, **({'robot': robot} if robot is not None else {}),
                       **_env_args(policy, cameras, image_size, control_rate_hz, robot))
    elif env.task != task:
        raise ValueError(f'env is a {env.task!r} env, not {task!r}')
    limit = step_limit(env, max_steps)
    seeds = list(range(seed, seed + episodes))
    label = f'eval {task}' if progress else None
    was_training = getattr(policy, 'training', None)
    if was_training is not None:
        policy.eval()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        with torch.no_grad():
            results, extra = (_run_direct(env, policy, seeds, limit, label) if direct else
                              _run_loop(env, policy, seeds, limit, label, loop_config,
                                        worker))
    finally:
        if own_env:
            env.close()
        if was_training:
            policy.train()
    per_episode = [r.to_dict() for r in results]
    return {**summarize_episodes(task, seed, per_episode, limit), **extra,
            'cpu_s': round(time.process_time() - cpu0, 2),
            'wall_s': round(time.perf_counter() - wall0, 2),
            'per_episode': per_episode}


def validation_loss(model, dataset, batch_size: int, batches: int, seed: int,
                    device) -> float | None:
    """The mean loss of ``model`` over at most ``batches`` batches of ``dataset``.

    A fixed sample order (from ``seed``), eval mode and no gradients; None when it is not
    finite (checkpoint JSON has no NaN).
    """
    from il_ros.training.device import to_device
    n = len(dataset)
    order = np.random.default_rng(seed).permutation(n)
    bs = min(batch_size, n)
    total, count = 0.0, 0
    was = model.training
    model.eval()
    with torch.no_grad():
        for b in range(min(batches, math.ceil(n / bs))):
            idx = order[b * bs:(b + 1) * bs]
            total += float(model.loss(to_device(dataset.batch(idx), device))) * len(idx)
            count += len(idx)
    model.train(was)
    loss = total / count
    return loss if math.isfinite(loss) else None


def format_result(res: dict) -> str:
    """One human-readable line for an :func:`evaluate` result."""
    modes = f", modes {res['modes']}" if set(res['modes']) - {'none'} else ''
    if res.get('loop'):
        n = max(1, res['ticks'])
        how = (f", through the control loop (rate-limited {res['safety']['rate_limited'] / n:.0%}"
               f" of ticks, {res['hold_ticks']} HOLD, {res['faults']} faults)")
    else:
        how = ', direct (no safety filter)' if res.get('loop') is False else ''
    return (f"{res['task']}: success {res['success_rate']:.1%} ({res['successes']}/"
            f"{res['episodes']}, seeds {res['seed']}..{res['seed'] + res['episodes'] - 1}), "
            f"mean {res['mean_steps']:.1f} steps of {res['max_steps']}, failures "
            f"{res['failures'] or '-'}{modes}, act {res['act_ms']:.1f} ms, "
            f"{res['cpu_s']} CPU s, {res['wall_s']} s{how}")


def checkpoint_spec(path):
    """Return the RobotSpec stored in a checkpoint folder (from its JSON; no weights)."""
    from il_ros.checkpoint_meta import checkpoint_config_file, read_checkpoint_meta
    from il_ros.models.policy_config import RobotSpec
    meta = read_checkpoint_meta(path)
    try:
        return RobotSpec.from_dict(meta['spec'])
    except (TypeError, ValueError) as e:
        raise ValueError(f'{checkpoint_config_file(path)}: invalid checkpoint description: '
                         f'{e}') from None


def evaluate_checkpoint(path, task: str, episodes: int = 50, seed: int = EVAL_SEED,
                        use_ema: bool = True, render: bool = True, progress: bool = True,
                        device: str = 'cpu', run=None, **kwargs) -> dict:
    """Load a checkpoint for the sim robot of ``task`` and :func:`evaluate` it.

    The sim robot is the one the checkpoint carries (the default robot for a checkpoint
    without one). The checkpoint is loaded with ``expect`` = that robot's RobotSpec
    (training.spec.sim_spec), so a checkpoint that does not fit raises ``CheckpointMismatch``
    naming the fields that differ (e.g. ``action_dim 7 != 6``). The result also holds
    'checkpoint', 'step', 'weights' and 'device' (where it ran, e.g. 'cpu', 'cuda:0').

    ``device`` (auto, cpu, cuda or cuda:N; il_ros.training.device.resolve_device) is where
    the policy runs: the checkpoint's CPU weights move there after loading (ValueError
    naming ``device`` for a bad name or a GPU that is not there, before anything loads).
    ``run``: what rolls the loaded policy out, called as :func:`evaluate` is (None:
    :func:`evaluate`; ``il-ros eval --workers`` passes parallel_eval.evaluate_with).
    """
    from il_ros.models import load_checkpoint
    from il_ros.training.device import resolve_device
    from il_ros.training.spec import robot_of_checkpoint, sim_spec
    dev = resolve_device(device)
    robot = kwargs.pop('robot', None) or robot_of_checkpoint(path)
    expect = sim_spec(task, like=checkpoint_spec(path), robot=robot)
    policy, extra = load_checkpoint(path, expect=expect, use_ema=use_ema)
    policy.to(dev)
    res = (run or evaluate)(policy, task, episodes, seed=seed, render=render,
                            progress=progress, robot=robot, **kwargs)
    res['checkpoint'] = str(path)
    res['step'] = extra.get('step')
    res['weights'] = 'ema' if use_ema else 'raw'
    res['device'] = str(policy.device)
    return res

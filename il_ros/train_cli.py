r"""``il-ros train`` and ``il-ros eval``: argparse glue for il_ros.cli.

    il-ros train --config lstm_gmm --task lift --dataset data/datasets/lift \\
                 --out runs/lift_lstm_gmm [--max-minutes 5] [--set lr=1e-3 --set seed=1]
    il-ros eval --checkpoint runs/lift_lstm_gmm/checkpoints/best --task lift --episodes 50 \\
                [--device cuda]

``train`` builds its config from a recipe (``--config``: a name in config/train/ or a YAML
path), a task overlay (``--task``: config/train/tasks/), then the ``--set`` overrides and the
flags (il_ros/training/config.py). It resumes when ``--out`` already holds an interrupted
run of the same config. Every episode of the dataset is checked first (il_ros.data.validate);
a bad one stops the run with one line naming it, or is skipped with ``--skip-bad-episodes``.
Exit codes: 0 done, 1 failed, 2 bad arguments, config, dataset or paths (one line on stderr,
nothing trained), 130 interrupted (resumable).
"""
from __future__ import annotations

from functools import partial
import json
import os
import signal
import subprocess
import sys


def _threads(n: int | None) -> None:
    import torch
    if n:
        torch.set_num_threads(n)


def _bad_numbers(args, prog: str, **lowest) -> bool:
    """Print one line and return True when a given option is below its lowest value."""
    for name, low in lowest.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            print(f'{prog}: --{name.replace("_", "-")} must be >= {low}, got {value}',
                  file=sys.stderr)
            return True
    return False


def torchrun_command(nproc: int, *target: str, log_dir=None) -> list[str]:
    """The torchrun command that runs ``target`` as ``nproc`` DDP ranks on this machine.

    ``target``: ``-m MODULE ARGS...`` or a script and its arguments. ``log_dir``: torchrun
    keeps each rank's output there and prints it prefixed ``[default<rank>]:`` (``--tee 3``),
    so that the output of a failing rank can be told from the others'. ``il-ros train
    --nproc`` and the trainer node (il_ros/training/ddp_worker.py) both start runs with it.
    """
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           f'--nproc_per_node={int(nproc)}']
    if log_dir is not None:
        cmd += ['--log-dir', str(log_dir), '--tee', '3']
    return cmd + [str(t) for t in target]


def _bad_device(args, prog: str) -> bool:
    """Print one line naming ``--device`` and return True when it is not usable here."""
    from il_ros.training.device import resolve_device
    try:
        resolve_device(args.device)
    except ValueError as e:           # resolve_device's messages begin with 'device'
        print(f'{prog}: --{str(e).replace("device=", "--device ")}', file=sys.stderr)
        return True
    return False


def _torchrun(args) -> int:
    """``il-ros train --nproc N``: the same command as N DDP ranks under torchrun."""
    argv = ['--config', args.config, '--out', args.out]
    for flag in ('task', 'dataset', 'max_minutes', 'max_steps', 'eval_task', 'device',
                 'threads'):
        if getattr(args, flag) is not None:
            argv += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
    argv += [a for kv in args.set for a in ('--set', kv)]
    argv += ['--skip-bad-episodes'] if args.skip_bad_episodes else []
    cmd = torchrun_command(args.nproc, '-m', 'il_ros.train_cli', 'train', *argv)
    print(f'il-ros train: {args.nproc} processes (torchrun, DDP)', file=sys.stderr, flush=True)
    try:
        return subprocess.run(cmd).returncode
    except KeyboardInterrupt:
        return 130


def _cmd_train(args) -> int:
    from il_ros.config import ConfigError
    from il_ros.training.config import load_train_config
    from il_ros.training.distributed import train      # one process, or a rank of several
    from il_ros.training.trainer import TrainError, TrainInputError
    if _bad_numbers(args, 'il-ros train', threads=1, nproc=1):
        return 2
    if args.nproc > 1 and 'RANK' not in os.environ:
        return _torchrun(args)
    try:
        cfg = load_train_config(args.config, args.set, task=args.task, dataset=args.dataset,
                                max_minutes=args.max_minutes, max_steps=args.max_steps,
                                eval_task=args.eval_task, device=args.device,
                                skip_bad_episodes=args.skip_bad_episodes or None)
    except ConfigError as e:
        print(f'il-ros train: {e}', file=sys.stderr)
        return 2
    _threads(args.threads)

    def _term(signum, frame):  # SIGTERM: stop like Ctrl-C, so the run saves and resumes
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, _term)
    try:
        summary = train(cfg, args.out,
                        on_message=lambda line: print(f'il-ros train: {line}',
                                                      file=sys.stderr, flush=True))
    except (TrainError, ConfigError, FileNotFoundError, KeyError, ValueError) as e:
        print(f'il-ros train: {e}', file=sys.stderr)
        return 1 if isinstance(e, TrainError) and not isinstance(e, TrainInputError) else 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    if os.environ.get('RANK', '0') == '0':        # one summary for a DDP run: rank 0's
        print(format_summary(summary))
    return 130 if summary['status'] == 'interrupted' else 0


def format_summary(s: dict) -> str:
    """Describe a finished (or stopped) run in a few lines."""
    best = s.get('best') or {}
    lines = [f"{s['status']}: {s['step']} steps, {s['train_s']:.0f} s training, "
             f"{s['samples_per_s']:.0f} samples/s"]
    if best:
        succ = best.get('success_rate')
        val = best.get('val_loss')
        lines.append(f"best @ step {best['step']}: success "
                     f"{'-' if succ is None else f'{succ:.0%}'}, val loss "
                     f"{'-' if val is None else f'{val:.4g}'} -> {best['path']}")
    lines.append(f"last: {s['last']}")
    return '\n'.join(lines)


def _cmd_eval(args) -> int:
    from il_ros.models import CheckpointMismatch
    from il_ros.training.evaluate import evaluate_checkpoint, format_result
    if (_bad_numbers(args, 'il-ros eval', threads=1, max_steps=1, seed=0, workers=1)
            or _bad_device(args, 'il-ros eval')):
        return 2
    if getattr(args, 'workers', 1) > 1 and (getattr(args, 'transport', 'inproc') == 'ros'
                             or args.device != 'cpu'):
        print('il-ros eval: --workers is for --transport inproc on the CPU (each worker '
              'runs its share of the episodes on one CPU thread)', file=sys.stderr)
        return 2
    if getattr(args, 'direct', False) and getattr(args, 'transport', 'inproc') == 'ros':
        print('il-ros eval: --direct is for --transport inproc (over ROS the controller node '
              'always runs its control loop)', file=sys.stderr)
        return 2
    _threads(args.threads)
    try:
        kw = dict(episodes=args.episodes, seed=args.seed, use_ema=not args.raw_weights,
                  progress=not args.json, max_steps=args.max_steps)
        if getattr(args, 'transport', 'inproc') == 'ros':
            from il_ros.ros.ros_eval import evaluate_ros, NodeDied
            try:
                res = evaluate_ros(args.checkpoint, args.task, **kw,
                                   controller_params={'device': args.device})
            except (NodeDied, TimeoutError, RuntimeError) as e:
                print(f'il-ros eval --transport ros: {e}', file=sys.stderr)
                return 1
        else:
            from il_ros.training.parallel_eval import evaluate_with
            res = evaluate_checkpoint(args.checkpoint, args.task, device=args.device,
                                      direct=getattr(args, 'direct', False),
                                      run=partial(evaluate_with, getattr(args, 'workers', 1)),
                                      **kw)
    except (CheckpointMismatch, FileNotFoundError, ValueError) as e:
        print(f'il-ros eval: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res if args.per_episode else
                         {k: v for k, v in res.items() if k != 'per_episode'}))
    else:
        print(format_result(res))
    return 0


def add_train_parser(subparsers) -> None:
    """Add ``train`` to an argparse subparsers object."""
    p = subparsers.add_parser('train', help='train a policy on a dataset (resumable)')
    p.add_argument('--config', default='demo',
                   help='recipe: a name in config/train/ (mse_chunk, lstm_gmm, diffusion, '
                        'lstm_gmm_resnet, demo) or a YAML path (default: demo)')
    p.add_argument('--task', help='task overlay in config/train/tasks/ (lift, reach_around, '
                   'path: cameras, rollout task, per-head settings); default: the overlay of '
                   'the recipe\'s eval_task, if any')
    p.add_argument('--dataset', help='dataset folder (overrides the config\'s dataset)')
    p.add_argument('--out', required=True, help='run folder (resumed when it holds a run)')
    p.add_argument('--max-minutes', type=float, help='training budget in minutes')
    p.add_argument('--max-steps', type=int, help='training budget in gradient steps')
    p.add_argument('--eval-task', help='sim task for periodic rollouts (overrides the '
                   'task overlay\'s; --set eval_task=null: none)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config field (YAML value; policy.<field> for the '
                        'policy); repeatable')
    p.add_argument('--skip-bad-episodes', action='store_true',
                   help='leave out episodes that fail the dataset check (named on stderr and '
                        'in summary.json) instead of stopping (config: skip_bad_episodes)')
    p.add_argument('--device', help='auto (default: the GPU when PyTorch sees one), cpu, '
                   'cuda or cuda:N; checkpoints load on the CPU either way')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--nproc', type=int, default=1,
                   help='train one run on N processes with DDP through torchrun (gloo on the '
                   'CPU, NCCL on GPUs); batch_size is the global batch (il_ros/training/'
                   'distributed.py)')
    p.set_defaults(func=_cmd_train)


def add_eval_parser(subparsers) -> None:
    """Add ``eval`` to an argparse subparsers object."""
    from il_ros.keys import EVAL_SEED
    p = subparsers.add_parser('eval', help='roll a checkpoint out in the sim')
    p.add_argument('--checkpoint', required=True, help='checkpoint folder')
    p.add_argument('--task', required=True, help='sim task: lift, reach_around, path')
    p.add_argument('--episodes', type=int, default=50)
    p.add_argument('--seed', type=int, default=EVAL_SEED,
                   help=f'episode k uses env seed SEED + k (default {EVAL_SEED}; demos are '
                        'recorded from seed 0)')
    p.add_argument('--max-steps', type=int, default=None,
                   help='cap on control steps per episode (default: the task\'s limit)')
    p.add_argument('--raw-weights', action='store_true',
                   help='evaluate the raw weights instead of the EMA')
    p.add_argument('--json', action='store_true', help='print the result as JSON')
    p.add_argument('--per-episode', action='store_true',
                   help='with --json: include every episode')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--workers', type=int, default=1,
                   help='split the episodes over this many processes (one CPU thread each; '
                        'the same episodes and result, sooner where cores are idle)')
    p.add_argument('--device', default='cpu',
                   help='where the policy runs: cpu (default, as the controller node), auto '
                        '(the GPU when PyTorch sees one), cuda or cuda:N; over --transport '
                        'ros it is the controller node\'s device parameter')
    p.add_argument('--transport', choices=('inproc', 'ros'), default='inproc',
                   help='inproc: step the sim in this process (fast), through the '
                        'controller\'s control loop; ros: run sim_robot + the controller node '
                        'as processes over ROS 2, in real time (il_ros/ros/ros_eval.py)')
    p.add_argument('--direct', action='store_true',
                   help='inproc: send policy.act\'s actions to the sim unfiltered, without the '
                        'controller\'s control loop (safety filter, step limits, chunk guard, '
                        'queue); faster, but not what deployment does')
    p.set_defaults(func=_cmd_eval)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m il_ros.train_cli train|eval ...``)."""
    import argparse
    parser = argparse.ArgumentParser(prog='il-ros', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True, metavar='COMMAND')
    add_train_parser(sub)
    add_eval_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())

"""``il-ros demo`` / ``make demo``: the whole loop, in the sim, through ROS 2.

1. record scripted demonstrations through the node graph (sim_robot, teleop, recorder), with
   DART noise on the executed command (the clean expert action is the label);
2. convert the bags into a dataset;
3. inspect it (contact sheet, action plots);
4. train a policy (config/train/demo.yaml: conv4 encoders on the front and wrist cameras,
   8-action MSE chunks, a few CPU minutes);
5. deploy the best checkpoint through the controller node against sim_robot, in real time,
   and measure its success (``il-ros eval --transport ros``), next to the in-process
   rollout of the same checkpoint;
6. write ``OUT/report.md``, ``OUT/report.json`` and ``OUT/success.png``.

A rerun reuses what is already there: complete recordings, converted bags (by content) and
a finished training run; a stopped run resumes. Delete OUT to start over.
"""
from __future__ import annotations

import json
from pathlib import Path
import sys
import time


def _say(step: int, total: int, text: str) -> None:
    print(f'\n[demo {step}/{total}] {text}', flush=True)


def plot_success(results: dict, path: Path) -> Path:
    """Bar chart of the success rates, with each episode's length as dots."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(results)
    rates = [results[n]['success_rate'] for n in names]
    bars = ax.bar(names, [100 * r for r in rates], color=['tab:blue', 'tab:green'][:len(names)])
    for b, r in zip(bars, rates):
        ax.text(b.get_x() + b.get_width() / 2, 100 * r + 1, f'{r:.0%}', ha='center')
    ax.set_ylim(0, 110)
    ax.set_ylabel('success (%)')
    ax.set_title('success rate, same checkpoint and seeds')
    for i, n in enumerate(names):
        eps = results[n].get('per_episode') or []
        steps = [e['steps'] for e in eps]
        colors = ['tab:green' if e['success'] else 'tab:red' for e in eps]
        ax2.scatter([i + 0.1 * ((j % 5) - 2) for j in range(len(eps))], steps, c=colors, s=12)
    ax2.set_xticks(range(len(names)), names)
    ax2.set_ylabel('control steps (green: success)')
    ax2.set_title('episode lengths')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class DemoFailed(Exception):
    """A step of the demo failed; the message says what happened, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def record_demos(bags: Path, task: str, episodes: int, rtf: float, cameras, noise: float,
                 robot: str = 'sim_arm'):
    """Step 1: record ``episodes`` scripted episodes into ``bags`` (il_ros.recording)."""
    from il_ros.data.bag_info import format_summary, summarize
    from il_ros.recording import record_episodes, RecordError
    try:
        result = record_episodes(bags, task, episodes, rtf=rtf, cameras=cameras, noise=noise,
                                 robot=robot)
    except RecordError as e:
        raise DemoFailed(str(e), code=2) from None
    if not result.ok:
        raise DemoFailed(f'recording the demonstrations failed: {result.error}')
    print(format_summary(summarize(bags)))


def convert_demos(bags: Path, dataset: Path, cameras, robot: str = 'sim_arm') -> None:
    """Step 2: convert the bags into ``dataset``.

    The action is the expert's clean label (``/il/teleop/command``; the executed command
    carries the DART noise).
    """
    from il_ros import keys
    from il_ros.data.convert import convert, format_reports
    from il_ros.data.topic_map import ConvertConfig, TopicMap
    from il_ros.robot import load_robot
    topics = TopicMap.from_robot(load_robot(robot), cameras,
                                 action_topic=keys.TOPIC_TELEOP_COMMAND)
    reports = convert([bags], dataset, ConvertConfig(topics=topics, robot=robot))
    print(format_reports(reports))
    print(f'report: {dataset / "conversion_report.json"}')
    rejected = [r for r in reports if r.status == 'rejected']
    if rejected:
        raise DemoFailed(f'{len(rejected)} of {len(reports)} episodes were rejected by the '
                         f'conversion (see above and {dataset / "conversion_report.json"})')


def inspect_dataset(dataset: Path) -> None:
    """Step 3: print the dataset summary; write its contact sheet and action plots."""
    from il_ros.data.inspect import format_summary, inspect
    from il_ros.data.store import StoreError
    try:
        summary, pngs = inspect(dataset)
    except (StoreError, FileNotFoundError) as e:
        raise DemoFailed(f'inspecting {dataset}: {e}', code=2) from None
    print(format_summary(summary))
    for png in pngs:
        print(f'wrote {png}')


def run_demo(out='runs/demo', task: str = 'lift', episodes: int = 100, rtf: float = 8.0,
             cameras=('front', 'wrist'), config: str = 'demo', eval_episodes: int = 20,
             threads: int = 2, max_minutes: float | None = None, noise: float = 0.03,
             robot: str = 'sim_arm') -> int:
    """Run the six steps (module doc) on ``robot``; return the exit code (0: all worked)."""
    from il_ros.config import ConfigError
    from il_ros.robot import load_robot
    try:
        desc = load_robot(robot)
        if desc.sim is None or task not in desc.sim.scenes:
            raise DemoFailed(f'{desc.source}: sim: robot {desc.name!r} has no {task!r} scene '
                             f'(its tasks: {sorted(desc.sim.scenes) if desc.sim else []})',
                             code=2)
        desc.check_cameras(cameras, 'the demo')
        return _run(Path(out), task, episodes, rtf, tuple(cameras), config, eval_episodes,
                    threads, max_minutes, noise, robot)
    except ConfigError as e:
        print(f'il-ros demo: {e}', file=sys.stderr)
        return 2
    except DemoFailed as e:
        print(f'il-ros demo: {e}', file=sys.stderr)
        return e.code


def _run(out: Path, task: str, episodes: int, rtf: float, cameras: tuple, config: str,
         eval_episodes: int, threads: int, max_minutes: float | None, noise: float,
         robot: str) -> int:
    from il_ros import keys
    from il_ros.data.episodes import count_complete
    t_start = time.perf_counter()
    bags, dataset, run_dir = out / 'bags' / task, out / 'dataset', out / 'train'
    total, times = 6, {}

    t0 = time.perf_counter()
    have = count_complete(bags) if bags.is_dir() else 0
    if have >= episodes:
        _say(1, total, f'reusing the {have} recorded episodes in {bags}')
    else:
        if bags.exists() and any(p.name != '.logs' for p in bags.iterdir()):
            raise DemoFailed(f'{bags} holds {have} of {episodes} complete episodes; delete '
                             f'it (or all of {out}) to record again', code=2)
        _say(1, total, f'recording {episodes} scripted {task} episodes on robot {robot} '
             f'through the ROS 2 node graph (sim_robot, teleop, recorder) at {rtf:g}x real '
             f'time, cameras {" + ".join(cameras)}, DART noise {noise:g} rad on the executed '
             'command')
        record_demos(bags, task, episodes, rtf, cameras, noise, robot)
    times['record_s'] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _say(2, total, f'converting the bags into a training dataset at {dataset} (actions: the '
         f'expert\'s clean label on {keys.TOPIC_TELEOP_COMMAND})')
    convert_demos(bags, dataset, cameras, robot)
    times['convert_s'] = time.perf_counter() - t0

    _say(3, total, 'inspecting the dataset')
    inspect_dataset(dataset)

    t0 = time.perf_counter()
    summary, ckpt = train_policy(config, dataset, task, run_dir, threads, max_minutes,
                                 lambda text: _say(4, total, text))
    times['train_s'] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _say(5, total, f'deploying {ckpt} through the controller node against sim_robot in real '
         f'time: {eval_episodes} {task} episodes over ROS 2, then the same seeds in-process')
    from il_ros.ros.ros_eval import evaluate_ros
    from il_ros.training.evaluate import evaluate_checkpoint, format_result
    try:
        res_ros = evaluate_ros(ckpt, task, episodes=eval_episodes, log_dir=out / 'deploy_logs')
    except (RuntimeError, TimeoutError) as e:   # NodeDied is a RuntimeError
        raise DemoFailed(f'the deployment over ROS 2 failed: {e}\nnode logs: '
                         f'{out / "deploy_logs"}; the trained checkpoint is {ckpt}') from None
    print('over ROS 2:  ' + format_result(res_ros))
    times['deploy_eval_s'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_in = evaluate_checkpoint(ckpt, task, episodes=eval_episodes)
    print('in-process:  ' + format_result(res_in))
    times['inproc_eval_s'] = time.perf_counter() - t0

    _say(6, total, f'writing the report to {out}')
    times['total_s'] = time.perf_counter() - t_start
    report = write_report(out, task, max(have, episodes), ckpt, summary, res_ros, res_in,
                          times, run_dir, dataset, robot)
    print(f'\n[demo] {robot} {task}: success {report["success_ros"]:.0%} through the controller '
          f'node over ROS 2 ({report["success_inproc"]:.0%} in-process), {eval_episodes} '
          f'episodes; {times["total_s"] / 60:.1f} min in all. Report: {out / "report.md"}')
    return 0


def train_policy(config: str, dataset: Path, task: str, run_dir: Path, threads: int,
                 max_minutes: float | None, say) -> tuple[dict, Path]:
    """Step 4: train ``config`` on ``dataset`` into ``run_dir`` (resuming a stopped run).

    Returns the run summary and the checkpoint to deploy (the best, else the last).
    """
    from il_ros.train_cli import format_summary
    from il_ros.training.config import load_train_config
    from il_ros.training.trainer import train
    import torch
    torch.set_num_threads(threads)
    cfg = load_train_config(config, [], dataset=str(dataset), max_minutes=max_minutes,
                            eval_task=task)
    budget = ' or '.join(b for b in (
        cfg.max_steps and f'{cfg.max_steps} steps', cfg.max_minutes and f'{cfg.max_minutes:g} min')
        if b)
    every = ' or '.join(b for b in (
        cfg.eval_every_steps and f'{cfg.eval_every_steps} steps',
        cfg.eval_every_minutes and f'{cfg.eval_every_minutes:g} min') if b) or 'the end'
    say(f'training {config!r} for {budget} on {threads} threads (rollouts every {every} pick '
        f'the best checkpoint) into {run_dir}')
    summary = train(cfg, run_dir)
    print(format_summary(summary))
    if summary['status'] != 'done':
        raise DemoFailed(f'training {summary["status"]}; run the demo again to resume it',
                         code=130)
    best = summary.get('best') or {}
    return summary, Path(best.get('path') or summary['last'])


def write_report(out: Path, task: str, recorded: int, ckpt: Path, summary: dict,
                 res_ros: dict, res_in: dict, times: dict, run_dir: Path,
                 dataset: Path, robot: str = 'sim_arm') -> dict:
    """Step 6: write ``report.json``, ``report.md`` and ``success.png`` into ``out``.

    ``report.json`` keeps every evaluated episode's outcome. Returns the report dict.
    """
    from il_ros.fsio import atomic_write_json, atomic_write_text
    plot_success({'ROS 2 (controller node)': res_ros, 'in-process': res_in},
                 out / 'success.png')
    outcome = ('seed', 'success', 'steps', 'failure')
    report = {'task': task, 'robot': robot, 'episodes_recorded': recorded,
              'checkpoint': str(ckpt),
              'train': {k: summary.get(k) for k in ('step', 'train_s', 'samples_per_s')},
              'success_ros': res_ros['success_rate'], 'success_inproc': res_in['success_rate'],
              'eval_episodes': res_ros['episodes'],
              'seconds': {k: round(v, 1) for k, v in times.items()},
              'ros': {k: v for k, v in res_ros.items() if k != 'per_episode'},
              'inproc': {k: v for k, v in res_in.items() if k != 'per_episode'},
              'episodes_ros': [{k: e.get(k) for k in outcome} for e in res_ros['per_episode']],
              'episodes_inproc': [{k: e.get(k) for k in outcome}
                                  for e in res_in['per_episode']]}
    atomic_write_json(out / 'report.json', report, sync=False)
    atomic_write_text(out / 'report.md', format_markdown(out, report, run_dir, dataset),
                      sync=False)
    return report


def format_markdown(out: Path, rep: dict, run_dir: Path, dataset: Path) -> str:
    """The text of ``report.md`` (images linked relative to ``out``)."""
    s = rep['seconds']
    rel = lambda p: Path(p).resolve().relative_to(out.resolve())  # noqa: E731
    lines = [
        f"# il_ros demo: {rep['task']} on {rep.get('robot', 'sim_arm')}", '',
        f"- Success through the controller node over ROS 2: **{rep['success_ros']:.0%}** "
        f"({rep['eval_episodes']} episodes, seeds {rep['ros']['seed']}..), in-process "
        f"{rep['success_inproc']:.0%} on the same seeds.",
        f"- Failures over ROS 2: {rep['ros']['failures'] or '-'}; controller: "
        f"{json.dumps(rep['ros'].get('controller', {}))}",
        f"- Demonstrations: {rep['episodes_recorded']} scripted episodes; training: "
        f"{rep['train']['step']} steps in {rep['train']['train_s'] / 60:.1f} min "
        f"({rep['train']['samples_per_s']:.0f} samples/s); checkpoint `{rep['checkpoint']}`.",
        '- Time (s): ' + ', '.join(f'{k[:-2]} {v:.0f}' for k, v in s.items()), '',
        '![success](success.png)', '',
        f'![training curves]({rel(run_dir / "curves.png")})', '',
        f'![dataset]({rel(dataset / "inspect" / "contact_sheet.png")})', '',
    ]
    return '\n'.join(lines)

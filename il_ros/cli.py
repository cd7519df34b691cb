"""The ``il-ros`` command: run the node graph and the learning pipeline from a plain venv.

This module is argparse glue: each command calls a library function (il_ros.recording,
il_ros.data, il_ros.demo, il_ros.dagger, il_ros.train_cli, ...) and maps its result or
error to an exit code; nothing else imports it.

    il-ros record --task lift --episodes 20 --out data/bags/lift
    il-ros bag-info data/bags/lift [--json]
    il-ros bag-recover data/bags/lift/episode_0007     # a killed episode's complete chunks
    il-ros convert data/bags/lift --out data/datasets/lift
    il-ros inspect data/datasets/lift
    il-ros view data/datasets/lift --episode 3          # Rerun; headless: an .rrd file
    il-ros export data/datasets/lift --format lerobot --out data/lerobot/lift
    il-ros import data/lerobot/so101 --format lerobot --out data/datasets/so101
    il-ros train --config lstm_gmm --task lift --dataset data/datasets/lift --out runs/x
    il-ros eval --checkpoint runs/x/checkpoints/best --task lift --episodes 50
    il-ros deploy --checkpoint runs/x/checkpoints/best --sim lift --enable
    il-ros dagger --task path --rounds 3 --episodes-per-round 10
    il-ros demo
    il-ros node sim_robot --ros-args -p task:=reach_around
    il-ros expert-eval --task lift --episodes 100
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from il_ros.data.bag_cli import add_bag_parsers
from il_ros.interop.cli import add_interop_parsers
from il_ros.viewer import add_view_parser


def _cmd_node(args) -> int:
    """Run one node in this process (``ros2 run`` without a ROS install)."""
    from il_ros.config import load_graph
    graph = load_graph()
    executables = sorted({s.executable for s in graph.nodes.values()})
    if args.name not in executables:
        print(f'il-ros node: unknown node {args.name!r}; known: {executables}', file=sys.stderr)
        return 2
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    from il_ros.launcher import dds_profile_env
    os.environ.update(dds_profile_env(os.environ))  # before rclpy creates a participant
    import importlib
    module = importlib.import_module(f'il_ros.ros.{args.name}')
    module.main(args=[f'il-ros-{args.name}', *args.ros_args])
    return 0


def _cmd_record(args) -> int:
    """Record scripted episodes through the real node graph (separate processes over DDS).

    Exit 0: every episode recorded (complete, or complete_with_loss: reported); 1: the
    recording failed (a node died, time ran out); 2: it could not start (bad task, episodes,
    cameras or output folder).
    """
    from il_ros.data.bag_info import format_summary, summarize
    from il_ros.recording import record_episodes, RecordError
    if args.episodes < 1:   # before anything starts
        print(f'il-ros record: --episodes must be >= 1, got {args.episodes}', file=sys.stderr)
        return 2
    try:
        result = record_episodes(args.out, args.task, args.episodes, robot=args.robot,
                                 rtf=args.rtf, seed=args.seed, noise=args.noise,
                                 cameras=args.cameras or None,
                                 episode_timeout=args.episode_timeout, timeout=args.timeout,
                                 namespace=args.namespace)
    except RecordError as e:
        print(f'il-ros record: {e}', file=sys.stderr)
        return 2
    if not result.ok:
        print(f'\nil-ros record: {result.error}', file=sys.stderr)
        return 1
    print(format_summary(summarize(result.out)))
    lossy = result.with_loss
    if lossy:
        print(f'il-ros record: {len(lossy)} of {len(result.statuses)} episode(s) recorded '
              'complete_with_loss (kept; see docs/dataset.md):')
        for name, topics in lossy.items():
            print(f'  {name[:-5]}: {"; ".join(topics) or "see its warnings"}')
    return 0


def _cmd_demo(args) -> int:
    """The main job: record, convert, inspect, train, deploy over ROS 2, report."""
    from il_ros.demo import run_demo
    return run_demo(args.out, task=args.task, episodes=args.episodes, rtf=args.rtf,
                    cameras=tuple(args.cameras), config=args.config,
                    eval_episodes=args.eval_episodes, threads=args.threads,
                    max_minutes=args.max_minutes, noise=args.noise, robot=args.robot)


def deploy_graph(args):
    """The ``deploy`` graph of parsed ``il-ros deploy`` arguments: (GraphRunner, node names).

    Planned (il_ros.graph_plan) as ``ros2 launch il_ros deploy.launch.py`` plans it: the
    sim's cameras and the control rate come from the checkpoint unless --cameras is given.
    Raises ConfigError (a bad checkpoint, robot or camera) or ValueError (a bad --set).
    """
    from il_ros.launcher import GraphRunner, ros_env
    values = {'robot': args.robot, 'enabled': args.enable, 'cameras': args.cameras,
              'namespace': args.namespace}
    extra = {'controller': {}}
    nodes = ['controller']
    if args.checkpoint:
        values['checkpoint'] = str(Path(args.checkpoint).resolve())
    for item in args.set:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--set wants KEY=VALUE, got {item!r}')
        extra['controller'][key] = value
    if args.sim:
        nodes.append('sim_robot')
        values.update(task=args.sim, rtf=args.rtf)
    if args.teleop != 'none':
        nodes.append('teleop')
        values.update(teleop_mode=args.teleop, task=args.sim or 'lift')
    # A sim graph gets its own random ROS domain; a real robot is on the caller's domain.
    env = ros_env(isolate=bool(args.sim))
    return GraphRunner('deploy', values, Path(args.log_dir), extra_params=extra,
                       env=env), nodes


def _cmd_deploy(args) -> int:
    """Run the ``deploy`` graph until Ctrl-C, printing the controller's status.

    The controller always; with --sim the simulated robot, with --teleop joy a teleop.
    """
    from il_ros.config import ConfigError
    try:
        runner, nodes = deploy_graph(args)
    except (ConfigError, ValueError) as e:
        print(f'il-ros deploy: {e}', file=sys.stderr)
        return 2
    env, log_dir = runner.env, runner.log_dir
    print(f'il-ros deploy: {", ".join(nodes)} (ROS_DOMAIN_ID={env.get("ROS_DOMAIN_ID", "0")},'
          f' logs in {log_dir}); Ctrl-C stops')
    if not args.enable:
        print('  the controller starts disabled: --enable, or call /controller/enable '
              '(std_srvs/SetBool) with data: true')
    import signal

    def _term(signum, frame):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, _term)
    runner.start(only=nodes)
    client = None
    try:
        from il_ros.ros.ros_eval import GraphClient, NodeDied
        client = GraphClient('il_ros_deploy', runner.env, runner)
        last = 0.0
        while True:
            client.executor.spin_once(timeout_sec=0.1)
            client.check_alive()
            st = client.status
            if st is not None and time.monotonic() - last >= args.status_every:
                last = time.monotonic()
                w = st['window']
                print(f"[{time.strftime('%H:%M:%S')}] {'enabled' if st['enabled'] else 'disabled'}"
                      f" {st['source']} ({st['reason']}), tick {st['tick']}, policy "
                      f"{st['policy_ticks']} / human {st['human_ticks']} / hold "
                      f"{st['hold_ticks']} ticks, step p50 {w['latency_ms_p50']} ms, "
                      f"underruns {st['underruns']}, checkpoint {st['checkpoint']}"
                      + (f", loading {st['loading']}" if st['loading'] else '')
                      + (f"\n  last error: {st['last_error']}" if st['last_error'] else ''),
                      flush=True)
    except KeyboardInterrupt:
        return 0
    except NodeDied as e:
        print(f'il-ros deploy: {e}', file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
        runner.stop()
        signal.signal(signal.SIGTERM, old)


def _cmd_convert(args) -> int:
    """Bags -> dataset. Exit 0: all converted or skipped; 1: some rejected; 2: bad config."""
    from il_ros import keys
    from il_ros.config import ConfigError
    from il_ros.data.convert import convert, format_reports
    from il_ros.data.topic_map import ConvertConfig, load_topic_map, TopicMap
    try:
        if args.robot and not args.topics:
            from il_ros.robot import load_robot
            robot = load_robot(args.robot)
            topics = TopicMap.from_robot(robot, args.cameras or robot.camera_names[:1],
                                         args.action_topic)
            args.cameras = args.action_topic = None       # both taken into the topic map
        else:
            topics = load_topic_map(args.topics)
        if args.cameras:
            if args.topics:
                raise ValueError('give the cameras in the --topics YAML or with --cameras, '
                                 'not both')
            topics.cameras = {c: keys.camera_topic(c) for c in args.cameras}
        if args.action_topic:
            if args.topics:
                raise ValueError('give the action topic in the --topics YAML or with '
                                 '--action-topic, not both')
            topics.action.topic = args.action_topic
        cfg = ConvertConfig(topics=topics, rate_hz=args.rate, robot=args.robot or '',
                            image_size=tuple(args.image_size),
                            pre_intervention_frames=args.pre_intervention,
                            stale_reject=args.stale_reject,
                            stale_warn=min(2.0, args.stale_reject),
                            keep_incomplete=args.keep_incomplete, namespace=args.namespace)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f'--out {out} is a file, not a dataset folder')
    except (ConfigError, ValueError) as e:
        print(f'il-ros convert: {e}', file=sys.stderr)
        return 2
    from il_ros.data.store import StoreError
    try:
        reports = convert(args.bags, args.out, cfg, workers=args.workers)
    except (StoreError, OSError) as e:   # the dataset folder cannot be opened or written
        print(f'il-ros convert: {e}', file=sys.stderr)
        return 2
    print(format_reports(reports))
    print(f'report: {Path(args.out) / "conversion_report.json"}')
    return 1 if any(r.status == 'rejected' for r in reports) else 0


def _cmd_inspect(args) -> int:
    """Dataset summary plus a contact sheet and action plots (PNG)."""
    from il_ros.data.inspect import format_summary, inspect
    from il_ros.data.store import StoreError
    try:
        summary, pngs = inspect(args.dataset, args.out)
    except (StoreError, OSError) as e:
        print(f'il-ros inspect: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary))
        for p in pngs:
            print(f'wrote {p}')
    return 0


def _cmd_expert_eval(args) -> int:
    from il_ros.sim.expert_eval import main as expert_main
    argv = ['--task', args.task, '--robot', args.robot, '--episodes', str(args.episodes),
            '--noise', str(args.noise), '--seed', str(args.seed)] + (
        ['--json'] if args.json else [])
    return expert_main(argv) or 0


def _defaults(func) -> dict:
    """Keyword defaults of ``func``: the record flags default to the library's values."""
    import inspect
    return {n: p.default for n, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _add_robot(p: argparse.ArgumentParser) -> None:
    from il_ros.robot import DEFAULT_ROBOT
    p.add_argument('--robot', default=DEFAULT_ROBOT, metavar='NAME',
                   help='robot description: a name under config/robots (sim_arm, panda) or '
                        f'a path to a robot YAML (default {DEFAULT_ROBOT})')


def _add_namespace(p: argparse.ArgumentParser) -> None:
    from il_ros.graph_plan import NAMESPACE_HELP
    p.add_argument('--namespace', default='', metavar='NS', help=NAMESPACE_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The ``il-ros`` argument parser (every subcommand)."""
    from il_ros import keys
    from il_ros.recording import record_episodes
    parser = argparse.ArgumentParser(prog='il-ros', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True, metavar='COMMAND')

    p = sub.add_parser('node', help='run one node (like `ros2 run il_ros NAME`)')
    p.add_argument('name', help='node executable: sim_robot, teleop, recorder, ...')
    p.add_argument('ros_args', nargs=argparse.REMAINDER, help='--ros-args -p k:=v ...')
    p.set_defaults(func=_cmd_node)

    p = sub.add_parser('record', help='record scripted episodes through the ROS node graph')
    rec = _defaults(record_episodes)
    _add_robot(p)
    p.add_argument('--task', default='lift')
    p.add_argument('--episodes', type=int, default=20)
    p.add_argument('--out', default='data/bags/lift', help='episode folder')
    p.add_argument('--rtf', type=float, default=rec['rtf'], help='sim real-time factor')
    p.add_argument('--noise', type=float, default=rec['noise'],
                   help='DART noise on executed commands')
    p.add_argument('--seed', type=int, default=rec['seed'], help='seed of the first episode')
    p.add_argument('--cameras', nargs='+', metavar='CAM',
                   help="the robot's cameras to render and record (default: its first, "
                        'front on the shipped robots); e.g. --cameras front wrist')
    p.add_argument('--episode-timeout', type=float, default=rec['episode_timeout'],
                   help='sim seconds before an episode is stopped as failed')
    p.add_argument('--timeout', type=float, default=rec['timeout'],
                   help='wall-clock limit (s)')
    _add_namespace(p)
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser('demo', help='the main job: record demos through ROS 2, convert, '
                       'train, deploy through the controller node, report (il_ros/demo.py)')
    p.add_argument('--out', default='runs/demo')
    _add_robot(p)
    p.add_argument('--task', default='lift')
    p.add_argument('--episodes', type=int, default=100, help='scripted demos to record')
    p.add_argument('--rtf', type=float, default=8.0, help='sim real-time factor when recording')
    p.add_argument('--cameras', nargs='+', default=['front', 'wrist'])
    p.add_argument('--noise', type=float, default=0.03,
                   help='DART noise (rad) on the executed command while recording')
    p.add_argument('--config', default='demo', help='training config (config/train/NAME.yaml)')
    p.add_argument('--max-minutes', type=float, default=None, help='training budget override')
    p.add_argument('--eval-episodes', type=int, default=20)
    p.add_argument('--threads', type=int, default=2, help='torch threads for training')
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser('deploy', help='run a policy through the controller node (on the sim '
                       'with --sim TASK)')
    p.add_argument('--checkpoint', help='checkpoint folder (none: the controller waits for one '
                   'on trainer/checkpoint or its checkpoint parameter)')
    _add_robot(p)
    p.add_argument('--sim', metavar='TASK', help='also run the simulated robot on this task')
    p.add_argument('--cameras', nargs='+', metavar='CAM',
                   help="cameras the sim renders (default: the checkpoint's)")
    p.add_argument('--enable', action='store_true', help='start the controller enabled')
    p.add_argument('--teleop', choices=('none', 'joy'), default='none',
                   help='joy: run teleop for human takeover (its command reaches the robot '
                        'only through the controller\'s safety filter)')
    p.add_argument('--rtf', type=float, default=1.0, help='sim real-time factor')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='controller parameter (see config/controller.yaml); repeatable')
    p.add_argument('--log-dir', default='runs/deploy/logs', help='node logs')
    p.add_argument('--status-every', type=float, default=2.0, help='seconds between status lines')
    _add_namespace(p)
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser('convert', help='turn episode bags into a training dataset')
    p.add_argument('bags', nargs='+', help='bag folders, or folders holding them')
    p.add_argument('--out', required=True, help='dataset folder (created or appended to)')
    p.add_argument('--topics', help='topic map YAML (default: the package\'s own topics, or '
                   'the --robot\'s)')
    p.add_argument('--robot', metavar='NAME|YAML',
                   help='robot description the bags were recorded on (config/robots/NAME.yaml '
                        'or a path): its topics (unless --topics), and the dataset stores it '
                        'with the action names, as do the checkpoints trained on it')
    p.add_argument('--cameras', nargs='+', metavar='CAM',
                   help='cameras of the package\'s own topics /camera/CAM/image_raw, or with '
                        '--robot of the robot\'s (default: front, or the robot\'s first; '
                        'e.g. --cameras front wrist)')
    p.add_argument('--action-topic', metavar='TOPIC',
                   help=f'action label topic (default {keys.TOPIC_COMMAND}); under DART the '
                        f'clean label {keys.TOPIC_TELEOP_COMMAND}')
    p.add_argument('--rate', type=float, default=20.0, help='control rate to resample to')
    p.add_argument('--image-size', type=int, nargs=2, default=[84, 84], metavar=('H', 'W'))
    p.add_argument('--pre-intervention', type=int, default=10,
                   help='policy frames before a takeover labelled pre_intervention')
    p.add_argument('--stale-reject', type=float, default=4.0,
                   help='reject an episode whose stream is older than this many periods')
    p.add_argument('--workers', type=int, default=1,
                   help='convert bags in this many processes (appended in order)')
    p.add_argument('--namespace', default='', metavar='NS', help='namespace the relative topic '
                   'names resolve in (default: that of the recorder that wrote the bag, or /)')
    p.add_argument('--keep-incomplete', action='store_true',
                   help='convert episodes the recorder marked incomplete (labelled so in the '
                        'report) instead of skipping them')
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser('inspect', help='summarize a dataset; contact sheet + action plots')
    p.add_argument('dataset')
    p.add_argument('--out', help='folder for the PNGs (default: DATASET/inspect)')
    p.add_argument('--json', action='store_true', help='machine-readable summary')
    p.set_defaults(func=_cmd_inspect)

    add_interop_parsers(sub)                 # export, import (il_ros/interop/cli.py)
    add_bag_parsers(sub)                     # bag-info, bag-recover (il_ros/data/bag_cli.py)
    add_view_parser(sub)                     # view (il_ros/viewer.py)
    from il_ros.train_cli import add_eval_parser, add_train_parser
    add_train_parser(sub)
    add_eval_parser(sub)
    from il_ros.dagger.cli import add_dagger_parser
    add_dagger_parser(sub)

    p = sub.add_parser('expert-eval', help='success rate of a task\'s scripted expert')
    p.add_argument('--task', default='lift')
    p.add_argument('--robot', default='sim_arm', metavar='NAME|YAML',
                   help='robot description (config/robots/NAME.yaml or a path)')
    p.add_argument('--episodes', type=int, default=100)
    p.add_argument('--noise', type=float, default=0.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=_cmd_expert_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``il-ros`` with ``argv`` (default: the command line); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    sys.exit(main())

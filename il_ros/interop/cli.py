"""``il-ros export``, ``import`` and ``foxglove-layout``: argparse glue for il_ros.interop.

    il-ros export data/datasets/lift --format lerobot --out data/lerobot/lift
    il-ros export data/datasets/lift --format robomimic --out data/robomimic/lift.hdf5
    il-ros import data/lerobot/so101 --format lerobot --out data/datasets/so101 [--map YAML]
    il-ros foxglove-layout --robot panda --out panda_layout.json

Each ends with one summary line; bad input prints one line naming the file and field on
stderr and exits 2 (docs/interop.md).
"""
from __future__ import annotations

import sys


def _cmd_export(args) -> int:
    """Dataset -> LeRobot v3 folder or robomimic HDF5. Exit 0 done, 2 bad input."""
    from il_ros.config import ConfigError
    from il_ros.data.store import StoreError
    from il_ros.interop.lerobot import LeRobotFormatError
    try:
        if args.format == 'lerobot':
            from il_ros.interop.lerobot import export_lerobot
            s = export_lerobot(args.dataset, args.out, fps=args.fps, episodes=args.episodes,
                               task=args.task, vcodec=args.vcodec)
            print(f'exported {s["episodes"]} episodes, {s["frames"]} frames at {s["fps"]} fps,'
                  f' cameras {s["cameras"] or "none"} ({s["vcodec"]}) to {s["out"]} '
                  f'(LeRobot v3.0) in {s["seconds"]:.1f} s')
        else:
            from il_ros.interop.robomimic import export_robomimic
            s = export_robomimic(args.dataset, args.out, episodes=args.episodes,
                                 valid_fraction=args.valid_fraction)
            print(f'exported to {args.out} (robomimic): '
                  + ', '.join(f'{k} {v}' for k, v in s.items() if not isinstance(v, dict)))
    except (ConfigError, LeRobotFormatError, StoreError, ValueError, OSError) as e:
        print(f'il-ros export: {e}', file=sys.stderr)
        return 2
    return 0


def _cmd_import(args) -> int:
    """LeRobot v3 folder -> dataset (appending). Exit 0 done, 2 bad input."""
    from il_ros.config import ConfigError
    from il_ros.data.store import StoreError
    from il_ros.interop.lerobot import import_lerobot, LeRobotFormatError
    try:
        s = import_lerobot(args.src, args.out, mapping=args.map)
    except (ConfigError, LeRobotFormatError, StoreError, ValueError, OSError) as e:
        print(f'il-ros import: {e}', file=sys.stderr)
        return 2
    for w in s['warnings']:
        print(f'warning: {w}')
    print(f'imported {s["episodes"]} episodes ({s["skipped"]} already there), {s["frames"]} '
          f'frames at {s["fps"]:g} fps, cameras {s["cameras"] or "none"} into {s["out"]} in '
          f'{s["seconds"]:.1f} s')
    return 0



def _cmd_foxglove_layout(args) -> int:
    """Robot description -> Foxglove layout JSON. Exit 0 done, 2 bad input."""
    from il_ros.config import ConfigError
    from il_ros.interop.foxglove import write_layout
    from il_ros.robot import load_robot
    try:
        topics = write_layout(load_robot(args.robot), args.out, cameras=args.cameras,
                              namespace=args.namespace)
    except (ConfigError, ValueError, OSError) as e:
        print(f'il-ros foxglove-layout: {e}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: cameras {", ".join(t for t, _ in topics["cameras"].values())}; '
          f'{topics["joint_states"]}, {topics["command"]}, {topics["control_source"]}')
    return 0


def add_interop_parsers(sub) -> None:
    """Add ``export``, ``import`` and ``foxglove-layout`` to the il-ros subparsers ``sub``."""
    p = sub.add_parser('export', help='write a dataset as LeRobot v3 or robomimic HDF5')
    p.add_argument('dataset')
    p.add_argument('--format', required=True, choices=['lerobot', 'robomimic'])
    p.add_argument('--out', required=True,
                   help='LeRobot: a new folder; robomimic: the .hdf5 file to write')
    p.add_argument('--episodes', type=int, nargs='+', metavar='N',
                   help='episode indices to export (default: all)')
    p.add_argument('--fps', type=int, help='LeRobot fps when the episodes record no rate_hz')
    p.add_argument('--task', help='LeRobot task string of every episode (default: each '
                   "episode's task)")
    p.add_argument('--vcodec', help='LeRobot video encoder (default: libsvtav1 if PyAV has it)')
    p.add_argument('--valid-fraction', type=float, default=0.1,
                   help='robomimic: share of episodes in the valid filter key (default 0.1)')
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser('import', help='append a local LeRobot v3 dataset to a dataset')
    p.add_argument('src', metavar='DIR', help='the LeRobot dataset folder (meta/info.json)')
    p.add_argument('--format', required=True, choices=['lerobot'])
    p.add_argument('--out', required=True, help='dataset folder (created or appended to)')
    p.add_argument('--map', metavar='YAML', help='feature map (default: '
                   'config/interop/lerobot_map.yaml, LeRobot\'s conventions)')
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser('foxglove-layout', help="write a Foxglove layout for a robot's "
                       'cameras, joints, commands and control source (docs/interop.md)')
    p.add_argument('--robot', default=None, metavar='NAME',
                   help='robot description: a name under config/robots or a YAML path '
                   '(default sim_arm)')
    p.add_argument('--cameras', nargs='+', help="cameras to show (default: all the robot's)")
    p.add_argument('--namespace', default='', help='the graph\'s ROS namespace (default none)')
    p.add_argument('--out', required=True, help='the layout JSON file to write')
    p.set_defaults(func=_cmd_foxglove_layout)

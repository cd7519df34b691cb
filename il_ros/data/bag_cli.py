"""``il-ros bag-info`` and ``il-ros bag-recover``: their parsers and what they run.

    il-ros bag-info data/bags/lift [--json]
    il-ros bag-recover data/bags/lift/episode_0007     # a killed episode's complete chunks

Both print the bag's problems naming the file and exit 2 (bag-recover: 1 when nothing is
complete enough to copy); il_ros.cli adds them to ``il-ros``.
"""
from __future__ import annotations

import json
from pathlib import Path
import sys


def _cmd_bag_info(args) -> int:
    from il_ros.data.bag_info import format_summary, summarize
    try:
        summary = summarize(Path(args.path))
    except (OSError, ValueError) as e:
        print(f'il-ros bag-info: {e}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _cmd_bag_recover(args) -> int:
    """Copy a killed episode's complete MCAP chunks into a new bag (exit 1: nothing to copy)."""
    from il_ros.data.bag_recover import recover_bag, RecoverError
    try:
        r = recover_bag(args.bag, args.out)
    except OSError as e:
        print(f'il-ros bag-recover: {e}', file=sys.stderr)
        return 2
    except RecoverError as e:
        print(f'il-ros bag-recover: {e}', file=sys.stderr)
        return 1
    topics = ', '.join(f'{t} {n}' for t, n in r['topics'].items())
    print(f'recovered {r["messages"]} messages ({topics}) from {r["chunks"]} complete '
          f'chunk(s) of {r["bag"]} into {r["out"]}; the original is unchanged')
    if r['meta'] is not None:
        print(f'episode metadata: {r["out"]}.json (status {r["meta"]["status"]}: '
              'il-ros convert --keep-incomplete converts it)')
    return 0


def add_bag_parsers(sub) -> None:
    """Add ``bag-info`` and ``bag-recover`` to the ``il-ros`` subparsers ``sub``."""
    p = sub.add_parser('bag-info', help='summarize a bag or a folder of episode bags')
    p.add_argument('path')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=_cmd_bag_info)

    p = sub.add_parser('bag-recover', help='copy the complete chunks of a killed recording '
                       '(an MCAP without summary) into a new, readable bag beside it')
    p.add_argument('bag', help='the bag folder (e.g. an episode_NNNN the recorder left at '
                   'status recording)')
    p.add_argument('--out', help='new bag folder (default: BAG_recovered; must not exist)')
    p.set_defaults(func=_cmd_bag_recover)

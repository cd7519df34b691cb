"""The ``il-ros`` command. Subcommands are added per issue; see ``il-ros --help``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='il-ros', description=__doc__)
    parser.add_subparsers(dest='cmd', required=True)
    args = parser.parse_args(argv)
    return 0 if args else 1


if __name__ == '__main__':
    sys.exit(main())

"""``il-ros dagger``: the command line of the rounds.

Every flag is a :class:`~il_ros.dagger.config.DaggerConfig` field: its name (``--rounds``,
``--episodes-per-round``; three keep shorter names, see :data:`FLAGS`), type, default and
help come from the dataclass, so a default is written once, in config.py. A flag that is
not given leaves the field's default. Exit codes: 0 done, 1 the run failed, 2 bad
arguments, 130 interrupted (run the same command to resume).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from il_ros.dagger.config import DaggerConfig, DaggerError, field_docs, METHODS, WEIGHTINGS

DESCRIPTION = ('Rounds of deploy -> record -> convert + aggregate -> retrain -> hot-reload '
               '(the rounds, methods and run folder: il_ros/dagger/__init__.py, '
               'docs/dagger.md).')
FLAGS = {'max_episode_steps': '--episode-steps', 'overrides': '--set',
         'supervisor': '--gate'}
"""Fields whose flag is not ``--field-name``."""
CHOICES = {'method': METHODS, 'weighting': WEIGHTINGS}
"""Fields with a fixed set of values."""
METAVARS = {'image_size': ('H', 'W'), 'max_episode_steps': 'STEPS', 'overrides': 'KEY=VALUE',
            'supervisor': 'PARAM=VALUE'}
"""Placeholders in the help of fields that take structured values."""
APPENDED = ('overrides', 'supervisor')
"""Fields given one item per flag (repeatable)."""


def _optional_base(hint):
    """``X`` of ``X | None`` (else the hint itself)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1:
        return args[0]
    return hint


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ''
    if value is None or value == [] or value == {}:
        return ''                     # the docstring says what an unset field means
    if isinstance(value, tuple):
        value = ' '.join(map(str, value))
    return f' (default: {value})'


def add_field_arguments(parser: argparse.ArgumentParser, cls=DaggerConfig) -> None:
    """Add one flag per field of the dataclass ``cls`` (see the module doc)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = FLAGS.get(f.name, '--' + f.name.replace('_', '-'))
        doc = ' '.join(docs.get(f.name, '').split())
        kw = {'dest': f.name, 'default': argparse.SUPPRESS,
              'help': (doc + _default_text(f)).replace('%', '%%')}
        base = _optional_base(hints[f.name])
        if f.name in APPENDED:
            kw['action'] = 'append'
            kw['help'] += ' (repeatable)'
        elif typing.get_origin(base) is tuple:
            items = typing.get_args(base)
            kw['type'] = items[0]
            kw['nargs'] = '+' if items[-1] is Ellipsis else len(items)
        elif base in (int, float, str):
            kw['type'] = base
        if f.name in CHOICES:
            kw['choices'] = CHOICES[f.name]
        if f.name in METAVARS:
            kw['metavar'] = METAVARS[f.name]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw['required'] = True
        parser.add_argument(flag, **kw)


def add_dagger_parser(subparsers) -> None:
    """Add ``dagger`` to an argparse subparsers object (il_ros.cli)."""
    p = subparsers.add_parser('dagger', help='HG-DAgger rounds through the ROS node graph '
                              '(deploy with the scripted supervisor, record, aggregate, '
                              'retrain, hot-reload); DAgger / DART / BC baselines',
                              description=DESCRIPTION)
    add_field_arguments(p)
    p.set_defaults(func=cmd_dagger)


def config_from_args(args: argparse.Namespace) -> DaggerConfig:
    """The DaggerConfig of parsed ``il-ros dagger`` arguments (ValueError when invalid)."""
    import yaml
    names = {f.name for f in dataclasses.fields(DaggerConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if 'supervisor' in given:
        gate = {}
        for item in given['supervisor']:
            key, sep, value = item.partition('=')
            if not sep or not key.strip():
                raise ValueError(f'--gate wants PARAM=VALUE, got {item!r}')
            gate[key.strip()] = yaml.safe_load(value)
        given['supervisor'] = gate
    return DaggerConfig(**given)


def cmd_dagger(args: argparse.Namespace) -> int:
    """Run ``il-ros dagger`` (see the module doc for the exit codes)."""
    from pathlib import Path

    from il_ros.dagger.collect import run_dagger
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f'il-ros dagger: {e}', file=sys.stderr)
        return 2
    try:
        report = run_dagger(cfg)
    except DaggerError as e:
        print(f'il-ros dagger: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'\nil-ros dagger: interrupted; run the same command to resume ({cfg.out})',
              file=sys.stderr)
        return 130
    print((Path(cfg.out) / 'report.md').read_text())
    return 0 if report['rounds'] else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m il_ros.dagger --task ...``."""
    parser = argparse.ArgumentParser(prog='il-ros')
    sub = parser.add_subparsers(dest='cmd', required=True)
    add_dagger_parser(sub)
    args = parser.parse_args(['dagger', *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)

"""Validated config dataclasses and YAML load/save.

Rules (see shared/STYLE.md): one dataclass per config, every field documented, and
``__post_init__`` rejecting impossible combinations with a message that says what to change.
Config text is parsed with ``yaml.safe_load`` only; nothing is ever ``eval``-ed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from il_ros.resources import share_dir


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the file and the field."""


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely, with an error that names the file."""
    path = Path(path)
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'{path}: file not found') from None
    except yaml.YAMLError as e:
        raise ConfigError(f'{path}: invalid YAML: {e}') from None


def save_yaml(data: Any, path: str | Path) -> None:
    """Write YAML (creating the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(data, f, sort_keys=False)


def from_dict(cls, data: dict | None, where: str = ''):
    """Build dataclass ``cls`` from a dict, refusing unknown keys by name."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f'{where or cls.__name__}: unknown key(s) {unknown}; '
                          f'valid keys are {sorted(names)}')
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:
        raise ConfigError(f'{where or cls.__name__}: {e}') from None


@dataclass
class NodeSpec:
    """One node of the graph."""

    executable: str
    """console_scripts name (``ros2 run il_ros <executable>``); also ``il_ros.ros.<name>``."""
    params: str | None = None
    """Parameter YAML under config/ (``node_name: ros__parameters:``), or None."""
    args: dict[str, str] = field(default_factory=dict)
    """Node parameter -> graph argument whose value sets it (``task: task``)."""
    remappings: dict[str, str] = field(default_factory=dict)
    """Topic remappings ``from: to`` applied to this node."""

    def __post_init__(self):
        if not self.executable.isidentifier():
            raise ValueError(f'executable {self.executable!r} must be a Python identifier '
                             '(it names a module in il_ros.ros)')


GRAPH_ARG_TYPES = ('str', 'int', 'float', 'bool', 'str_list')
"""Types a graph argument may declare; il_ros.graph_plan.parse_arg parses values to them."""


@dataclass
class GraphArg:
    """A graph argument: a ``ros2 launch`` argument and an ``il-ros`` option alike."""

    default: str
    """Default value, as launch text (``'1.0'``, ``'[front]'``, ``''``)."""
    description: str = ''
    """What the argument does."""
    type: str = 'str'
    """Value type (one of GRAPH_ARG_TYPES): ``rtf:=4`` of type float is the double 4.0."""

    def __post_init__(self):
        if self.type not in GRAPH_ARG_TYPES:
            raise ValueError(f'type {self.type!r} is not one of {list(GRAPH_ARG_TYPES)}')
        self.default = str(self.default)


@dataclass
class GraphConfig:
    """The node graph as data: launch files and the ``il-ros`` CLI both build from it."""

    nodes: dict[str, NodeSpec]
    """Node name -> spec."""
    graphs: dict[str, dict[str, dict]]
    """Graph name (``sim``, ``record``, ...) -> {node name: fixed parameter overrides}."""
    args: dict[str, GraphArg] = field(default_factory=dict)
    """Argument name -> declaration."""
    exit_with: dict[str, str] = field(default_factory=dict)
    """Graph name -> node whose exit ends the graph (the others are then stopped)."""

    def __post_init__(self):
        for g, node in self.exit_with.items():
            if node not in self.graphs.get(g, {}):
                raise ValueError(f'exit_with: node {node!r} is not in graph {g!r}')
        for g, members in self.graphs.items():
            if not isinstance(members, dict):
                raise ValueError(f'graph {g!r} must map node names to parameter overrides')
            missing = [m for m in members if m not in self.nodes]
            if missing:
                raise ValueError(f'graph {g!r} names undefined node(s) {missing}; '
                                 f'define them under nodes:')
        for name, spec in self.nodes.items():
            unknown = sorted(set(spec.args.values()) - set(self.args))
            if unknown:
                raise ValueError(f'node {name!r} uses undeclared argument(s) {unknown}; '
                                 f'declare them under args:')

    def params_path(self, node: str) -> Path | None:
        """Absolute path of a node's parameter file, or None."""
        spec = self.nodes[node]
        return share_dir() / 'config' / spec.params if spec.params else None

    def graph_args(self, graph: str) -> list[str]:
        """The arguments the nodes of ``graph`` use, in declaration order."""
        used = {a for n in self.graphs[graph] for a in self.nodes[n].args.values()}
        return [a for a in self.args if a in used]

    def node_params(self, graph: str, node: str, values: dict[str, str]) -> dict:
        """Parameter overrides for ``node`` in ``graph``: fixed ones, then argument values."""
        out = dict(self.graphs[graph][node] or {})
        for param, arg in self.nodes[node].args.items():
            out[param] = values.get(arg, self.args[arg].default)
        return out


def load_graph(path: str | Path | None = None) -> GraphConfig:
    """Load ``config/graph.yaml`` (or ``path``) into a validated GraphConfig."""
    path = Path(path) if path else share_dir() / 'config' / 'graph.yaml'
    raw = load_yaml(path) or {}
    nodes = {name: from_dict(NodeSpec, spec, f'{path}: nodes.{name}')
             for name, spec in (raw.get('nodes') or {}).items()}
    args = {name: from_dict(GraphArg, spec, f'{path}: args.{name}')
            for name, spec in (raw.get('args') or {}).items()}
    graphs = {g: {n: (o or {}) for n, o in (members or {}).items()}
              for g, members in (raw.get('graphs') or {}).items()}
    try:
        return GraphConfig(nodes=nodes, graphs=graphs, args=args,
                           exit_with=dict(raw.get('exit_with') or {}))
    except ValueError as e:
        raise ConfigError(f'{path}: {e}') from None

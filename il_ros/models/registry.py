"""Registry of policy components: encoders, history cores and action heads.

A component is one class in one file with a registered name and a config dataclass
(lerobot's ``register_subclass`` pattern, no flag matrices)::

    @dataclass
    class MseConfig:
        hidden: tuple[int, ...] = ()

    @register('head', 'mse')
    class MseHead(nn.Module):
        config_class = MseConfig

        def __init__(self, cfg: MseConfig, in_dim: int, action_dim: int, horizon: int): ...

``build('head', {'name': 'mse', 'hidden': [64]}, in_dim=..., action_dim=..., horizon=...)``
validates the keyword arguments against the config class and passes the dependencies
(``**deps``) to the constructor. What each kind's constructor receives:

- ``'encoder'``: image encoders ``in_channels``; proprio encoders ``in_dim``;
- ``'core'``: ``in_dim`` (per-frame feature size), ``obs_horizon``, ``seq_len``;
- ``'head'``: ``in_dim`` (core output size), ``action_dim``, ``horizon`` (Tp).

The built-in components register themselves when their modules are imported; the package
``il_ros.models`` imports them (``cores``, ``encoders``, ``heads``) before anything else, so
they are registered before any lookup. This module imports none of them: a component imports
it to register, never the other way round.
"""
from __future__ import annotations

import dataclasses
from typing import Any

KINDS = ('encoder', 'core', 'head')
_REGISTRY: dict[str, dict[str, type]] = {k: {} for k in KINDS}


def register(kind: str, name: str):
    """Class decorator: register a component class under ``name`` for ``kind``.

    The class must have a ``config_class`` attribute holding a dataclass.
    """
    if kind not in KINDS:
        raise ValueError(f'component kind {kind!r} unknown; use one of {KINDS}')

    def deco(cls):
        cfg_cls = getattr(cls, 'config_class', None)
        if cfg_cls is None or not dataclasses.is_dataclass(cfg_cls):
            raise TypeError(f'{cls.__name__}: set config_class to a dataclass to register it')
        if name in _REGISTRY[kind] and _REGISTRY[kind][name] is not cls:
            raise ValueError(f'{kind} {name!r} is already registered by '
                             f'{_REGISTRY[kind][name].__name__}')
        _REGISTRY[kind][name] = cls
        cls.registered_name = name
        return cls
    return deco


def names(kind: str) -> list[str]:
    """Return the registered names of ``kind``, sorted."""
    if kind not in KINDS:
        raise ValueError(f'component kind {kind!r} unknown; use one of {KINDS}')
    return sorted(_REGISTRY[kind])


def lookup(kind: str, name: str) -> type:
    """Return the class registered as ``name``; unknown names raise ValueError listing all."""
    registered = names(kind)
    if name not in registered:
        raise ValueError(f'{kind} {name!r} is not registered; registered {kind}s: '
                         f'{registered}')
    return _REGISTRY[kind][name]


def make_config(kind: str, cfg: dict | Any) -> tuple[type, Any]:
    """``{'name': ..., **kwargs}`` (or a config instance) -> (component class, config)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        matches = [c for c in _REGISTRY[kind].values() if isinstance(cfg, c.config_class)]
        if not matches:
            raise ValueError(f'{type(cfg).__name__} is not the config of a registered {kind}')
        return matches[0], cfg
    if not isinstance(cfg, dict) or 'name' not in cfg:
        raise ValueError(f'a {kind} config is a dict with a "name" key (one of '
                         f'{names(kind)}), got {cfg!r}')
    cls = lookup(kind, cfg['name'])
    kwargs = {k: v for k, v in cfg.items() if k != 'name'}
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f'{kind} {cfg["name"]!r} has no option(s) {unknown}; its options: '
                         f'{sorted(fields)}')
    return cls, cls.config_class(**kwargs)


def config_to_dict(kind: str, cfg: dict | Any) -> dict:
    """Normalize a component config to a JSON-able ``{'name': ..., every field}`` dict."""
    cls, conf = make_config(kind, cfg)
    out = {'name': cls.registered_name}
    for f in dataclasses.fields(conf):
        v = getattr(conf, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def build(kind: str, cfg: dict | Any, **deps):
    """Build the component named in ``cfg`` with its validated config and ``deps``."""
    cls, conf = make_config(kind, cfg)
    return cls(conf, **deps)


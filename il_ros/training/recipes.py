"""Training recipes and task overlays: finding them and layering them (config.py's doc).

A recipe is ``config/train/NAME.yaml``, a task overlay ``config/train/tasks/TASK.yaml``.
These functions work on plain config dicts; :func:`il_ros.training.config.load_train_config`
stacks them and builds the TrainConfig.
"""
from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

from il_ros.config import ConfigError, load_yaml
from il_ros.resources import share_dir

OVERLAY_SECTIONS = ('heads', 'recipes')
"""Overlay keys that are not TrainConfig fields: settings applied only for one head or
one recipe."""

# The retired {task}_{history}_{head} configs -> the recipe and the --set overrides that
# give the same TrainConfig with the task's overlay (bench/success_table.yaml has a row for
# each; test_train_config.py checks the two agree). Used for error messages only.
_RETIRED = {
    ('none', 'mse'): ('mse_chunk', []),
    ('none', 'gmm'): ('mse_chunk', ['policy.preset=none_gmm']),
    ('none', 'diffusion'): ('diffusion', []),
    ('lstm', 'mse'): ('mse_chunk', ['policy.preset=lstm_mse', 'batch_size=16']),
    ('lstm', 'gmm'): ('lstm_gmm', []),
    ('lstm', 'diffusion'): ('diffusion', ['policy.core={name: lstm}', 'policy.obs_horizon=1',
                                          'batch_size=16']),
}
_RETIRED_NAME = re.compile(r'(?P<task>\w+?)_(?P<core>none|lstm)_(?P<head>mse|gmm|diffusion)'
                           r'(?P<variant>_resnet)?')


def recipe_dir() -> Path:
    """Return the folder of the shipped recipes (``config/train/``)."""
    return share_dir() / 'config' / 'train'


def task_dir() -> Path:
    """Return the folder of the task overlays (``config/train/tasks/``)."""
    return recipe_dir() / 'tasks'


def recipe_names() -> list[str]:
    """Return the names of the shipped recipes."""
    return sorted(p.stem for p in recipe_dir().glob('*.yaml'))


def task_names() -> list[str]:
    """Return the names of the shipped task overlays."""
    return sorted(p.stem for p in task_dir().glob('*.yaml'))


def is_shipped_recipe(path: Path) -> bool:
    """Tell whether ``path`` is one of the recipes in ``config/train/``."""
    return path.resolve().parent == recipe_dir().resolve()


def retired_config_hint(name: str) -> str | None:
    """Say what replaces a retired ``{task}_{history}_{head}`` config name (None: not one)."""
    m = _RETIRED_NAME.fullmatch(name)
    if not m or m['task'] not in task_names():
        return None
    if m['variant']:
        if (m['core'], m['head']) != ('lstm', 'gmm'):
            return None
        recipe, sets = 'lstm_gmm_resnet', []
    else:
        recipe, sets = _RETIRED[m['core'], m['head']]
    cli = ' '.join([f'--config {recipe} --task {m["task"]}',
                    *(f'--set {shlex.quote(s)}' for s in sets)])
    return (f'training config {name!r} was replaced by a recipe and a task overlay: use '
            f'{cli} (bench/success_table.yaml lists the recipe, task and overrides of every '
            f'published row)')


def resolve_config_path(name: str | Path) -> Path:
    """Return a recipe's path: an existing file, or a name in ``config/train/``.

    Unknown names raise ConfigError listing the recipes; a retired config name (e.g.
    ``lift_lstm_gmm``) raises one saying which recipe and task replace it.
    """
    p = Path(name)
    if p.is_file():
        if p.resolve().parent == task_dir().resolve():
            raise ConfigError(f'{name} is a task overlay, not a recipe: use --task {p.stem} '
                              f'(load_train_config(..., task={p.stem!r}))')
        return p
    stem = p.stem if p.suffix in ('.yaml', '.yml') else p.name
    candidate = recipe_dir() / f'{stem}.yaml'
    if candidate.is_file():
        return candidate
    hint = retired_config_hint(stem)
    if hint:
        raise ConfigError(hint)
    raise ConfigError(f'training config {str(name)!r} not found: give a YAML path or a recipe '
                      f'of {recipe_dir()}: {", ".join(recipe_names())}')


def load_task_overlay(task: str | Path, fields: set[str]) -> tuple[dict, Path]:
    """Load and check a task overlay (a name in ``config/train/tasks/`` or a path).

    ``fields``: the TrainConfig field names (the keys an overlay section may set).
    """
    p = Path(task)
    if not p.is_file():
        p = task_dir() / f'{p.stem if p.suffix in (".yaml", ".yml") else p.name}.yaml'
        if not p.is_file():
            raise ConfigError(f'task overlay {str(task)!r} not found: give a YAML path or a '
                              f'task of {task_dir()}: {", ".join(task_names())}')
    raw = load_yaml(p)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f'{p}: a task overlay is a mapping of field: value')
    _check_section(raw, fields | set(OVERLAY_SECTIONS), str(p))
    for section in OVERLAY_SECTIONS:
        parts = raw.get(section) or {}
        if not isinstance(parts, dict):
            raise ConfigError(f'{p}: {section} must map a {section[:-1]} name to settings')
        for key, value in parts.items():
            if not isinstance(value, dict):
                raise ConfigError(f'{p}: {section}.{key} must be a mapping of field: value')
            _check_section(value, fields, f'{p}: {section}.{key}')
    return raw, p


def _check_section(section: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; valid keys are '
                          f'{sorted(allowed)}')
    policy = section.get('policy')
    if policy is None:
        return
    if not isinstance(policy, dict):
        raise ConfigError(f'{where}: policy must be a mapping of policy fields to merge')
    head = policy.get('head')
    if 'preset' in policy or (isinstance(head, dict) and 'name' in head):
        raise ConfigError(f'{where}: an overlay does not choose the preset or the head '
                          f'(the recipe does); it sets their task-specific options')


def overlay_parts(overlay: dict, head: str | None, recipe: str | None) -> list[dict]:
    """Return the parts of an overlay that apply, in the order to merge them.

    Its common settings, then ``heads[head]``, then ``recipes[recipe]`` (each may be empty).
    """
    common = {k: v for k, v in overlay.items() if k not in OVERLAY_SECTIONS}
    return [common, (overlay.get('heads') or {}).get(head) or {},
            (overlay.get('recipes') or {}).get(recipe) or {}]


def merge(base: dict, over: dict) -> dict:
    """Return ``base`` with ``over`` merged in: nested mappings merge, values replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def head_name(policy) -> str | None:
    """Return the head name a TrainConfig.policy value selects (None: cannot tell)."""
    from il_ros.models.policy_config import PolicyConfig
    from il_ros.models.presets import PRESETS
    if isinstance(policy, str):
        policy = {'preset': policy}
    if not isinstance(policy, dict):
        return None
    head = policy.get('head')
    if isinstance(head, dict) and 'name' in head:
        return head['name']
    if 'preset' in policy:
        return (PRESETS.get(policy['preset']) or {}).get('head', {}).get('name')
    return PolicyConfig().head['name']

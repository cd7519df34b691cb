"""TrainConfig: everything a training run needs besides the dataset's content.

Load it from ``config/train/*.yaml`` (:func:`load_train_config`), override single fields with
``key=value`` strings (``--set`` on the command line; the value is parsed as YAML, dotted
keys reach into the policy config), and save it into the run folder (:func:`save_train_config`)
so that the run can be resumed or repeated.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any

import yaml

from il_ros.config import ConfigError, from_dict, load_yaml, save_yaml
from il_ros.data.sampler import CACHE_MODES
from il_ros.keys import LABEL_NAMES
from il_ros.resources import share_dir

SELECT_MODES = ('auto', 'success', 'val_loss', 'last')
BUDGET_FIELDS = ('max_steps', 'max_minutes', 'eval_every_steps', 'eval_every_minutes',
                 'eval_episodes', 'save_every_minutes', 'log_every', 'progress',
                 'num_workers', 'cache', 'dataset')
"""Fields a resumed run may change (budgets, reporting, data access); the others must match
the run folder's config.yaml, or the resumed run would not continue the same run."""
_FLOAT_FIELDS = ('lr', 'weight_decay', 'min_lr_ratio', 'max_minutes', 'grad_clip', 'ema_decay',
                 'val_fraction', 'eval_every_minutes', 'save_every_minutes',
                 'pre_intervention_weight')


@dataclass
class TrainConfig:
    """A behavioral-cloning training run (see docs/training.md)."""

    policy: Any = 'lstm_gmm'
    """The policy: a preset name (``il_ros.models.presets``), a dict ``{preset: NAME, ...}``
    whose other keys override the preset's fields (nested dicts merge), or a full policy
    config dict (no ``preset`` key)."""
    dataset: str | None = None
    """Dataset folder (usually given on the command line with ``--dataset``)."""
    batch_size: int = 64
    """Samples per gradient step."""
    lr: float = 3e-4
    """Peak AdamW learning rate (after warmup)."""
    weight_decay: float = 1e-6
    """AdamW decoupled weight decay."""
    warmup_steps: int = 100
    """Linear LR warmup from 0 over this many steps, then a cosine decay."""
    min_lr_ratio: float = 0.0
    """The cosine decays to ``lr * min_lr_ratio`` at the end of the budget."""
    max_steps: int | None = None
    """Gradient steps to train; None: bounded by ``max_minutes`` only."""
    max_minutes: float | None = 5.0
    """Wall-clock training budget in minutes (optimisation only: rollouts, validation and
    checkpoint writes are not counted). None: bounded by ``max_steps`` only. With both set the
    run ends at whichever comes first; the LR schedule follows ``max_steps`` when it is set
    (reproducible), else the time budget."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this; None or 0 disables clipping."""
    ema_decay: float = 0.99
    """EMA of the weights (evaluated, selected and deployed); 0 disables the EMA. The
    effective decay is ``min(ema_decay, (1 + step) / (10 + step))``, so the average follows
    the raw weights closely in the first steps (EMA matters early: docs/training.md)."""
    bf16: bool | None = True
    """Run the image encoders under bfloat16 autocast with channels_last tensors, in
    training and at act time (CPU: ~2x faster convs; heads and losses stay float32). Sets
    the policy config's ``bf16`` and ``channels_last``; None keeps the policy's own."""
    seed: int = 0
    """Seeds torch, numpy, random, the train/val split and the batch order."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for the validation loss (split by episode)."""
    val_batches: int = 8
    """At most this many batches (fixed, in order) per validation loss."""
    label_weights: dict[str, float] | None = None
    """Per-label loss weight, e.g. ``{intervention: 2.0, hold: 0.0}``; labels not named get
    1.0. None: uniform. Labels: demo, policy, intervention, pre_intervention, hold."""
    weighting: str = 'uniform'
    """How frames from interventions are weighted against the rest (il_ros.training.weighting):
    'uniform'; 'iwr' (intervention frames and all others get equal total weight); 'sirius'
    (as iwr, with pre_intervention frames downweighted by ``pre_intervention_weight``).
    ``label_weights`` multiply in (e.g. ``{hold: 0}`` drops HOLD frames first)."""
    pre_intervention_weight: float = 0.1
    """Sirius: weight of a pre_intervention frame relative to the other non-intervention
    frames."""
    init_checkpoint: str | None = None
    """Warm start: a checkpoint folder whose weights (its EMA weights when it has them) and
    normalizers the policy starts from (e.g. the previous DAgger round's policy). The policy
    config and robot must match. Ignored when resuming a run (its own state wins)."""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the training process; best on 2 cores with
    the dataset cached in RAM)."""
    cache: str = 'auto'
    """Sampler cache mode: 'auto', 'all' (everything in RAM) or 'lowdim'."""
    eval_task: str | None = None
    """Sim task for periodic in-process rollouts ('lift', 'reach_around', 'path'); None:
    no rollouts (checkpoints are then selected by validation loss)."""
    eval_every_steps: int | None = None
    """Evaluate (validation loss + rollouts) every this many steps; None: not by steps."""
    eval_every_minutes: float | None = 1.0
    """Evaluate every this many minutes of training; None: not by time. The final weights
    are always evaluated at the end."""
    eval_episodes: int = 10
    """Rollout episodes per periodic evaluation."""
    eval_seed: int = 1000
    """Base env seed of the rollouts (episode k: eval_seed + k); keep it above the seeds the
    demonstrations were recorded with (they start at 0)."""
    eval_max_steps: int | None = None
    """Cap on the control steps of an evaluation episode (None: the task's own limit)."""
    select_by: str = 'auto'
    """Best checkpoint: 'success' (rollout success rate, ties to the lower validation loss),
    'val_loss', 'last', or 'auto' ('success' with an eval_task, else 'val_loss', else
    'last')."""
    save_every_minutes: float = 1.0
    """Write the resumable ``checkpoints/last`` at least this often (and at every
    evaluation, at the end and on interruption)."""
    log_every: int = 20
    """Steps between rows of log.csv (train loss averaged over them)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        """Reject impossible combinations, saying what to change."""
        for name in _FLOAT_FIELDS:  # YAML 1.1 reads '3e-4' (no dot) as a string
            v = getattr(self, name)
            if isinstance(v, str):
                try:
                    setattr(self, name, float(v))
                except ValueError:
                    raise ValueError(f'{name} must be a number, got {v!r}') from None
        if not isinstance(self.policy, (str, dict)) or not self.policy:
            raise ValueError(f'policy must be a preset name or a dict, got {self.policy!r}')
        ints = {'batch_size': 1, 'warmup_steps': 0, 'val_batches': 1, 'num_workers': 0,
                'eval_episodes': 1, 'log_every': 1}
        for name, low in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {v!r}')
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f'lr must be > 0, got {self.lr}')
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f'min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}')
        if self.weight_decay < 0:
            raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay}')
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f'ema_decay must be in [0, 1) (0 disables the EMA), '
                             f'got {self.ema_decay}')
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f'grad_clip must be > 0 (or 0/None to disable), '
                             f'got {self.grad_clip}')
        self._check_budget()
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in [0, 1), got {self.val_fraction}')
        if self.cache not in CACHE_MODES:
            raise ValueError(f'cache must be one of {CACHE_MODES}, got {self.cache!r}')
        if self.label_weights is not None:
            unknown = sorted(set(self.label_weights) - set(LABEL_NAMES))
            if unknown:
                raise ValueError(f'label_weights names unknown label(s) {unknown}; labels '
                                 f'are {list(LABEL_NAMES)}')
            bad = {k: v for k, v in self.label_weights.items()
                   if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)}
            if bad:
                raise ValueError(f'label_weights must be finite numbers >= 0, got {bad}')
        from il_ros.training.weighting import SCHEMES
        if self.weighting not in SCHEMES:
            raise ValueError(f'weighting must be one of {SCHEMES}, got {self.weighting!r}')
        if not (math.isfinite(self.pre_intervention_weight)
                and self.pre_intervention_weight >= 0):
            raise ValueError(f'pre_intervention_weight must be >= 0, '
                             f'got {self.pre_intervention_weight}')
        if self.init_checkpoint is not None and not isinstance(self.init_checkpoint, str):
            raise ValueError(f'init_checkpoint must be a folder path, '
                             f'got {self.init_checkpoint!r}')
        self._check_eval()

    def _check_budget(self) -> None:
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError('set max_steps or max_minutes (or both): the run needs a budget')
        if self.max_steps is not None and (not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise ValueError(f'max_steps must be a positive integer, got {self.max_steps!r}')
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f'max_minutes must be > 0, got {self.max_minutes}')
        if self.max_steps is not None and self.warmup_steps >= self.max_steps:
            raise ValueError(f'warmup_steps ({self.warmup_steps}) must be below max_steps '
                             f'({self.max_steps}); lower warmup_steps')
        if self.eval_max_steps is not None and self.eval_max_steps < 1:
            raise ValueError(f'eval_max_steps must be >= 1 or None, got {self.eval_max_steps}')
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise ValueError(f'eval_every_steps must be >= 1 or None, '
                             f'got {self.eval_every_steps}')
        for name in ('eval_every_minutes', 'save_every_minutes'):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f'{name} must be > 0, got {v}')

    def _check_eval(self) -> None:
        from il_ros.sim.registry import TASKS
        if self.eval_task is not None and self.eval_task not in TASKS:
            raise ValueError(f'eval_task {self.eval_task!r} unknown; use one of {TASKS} '
                             f'or null for no rollouts')
        if self.select_by not in SELECT_MODES:
            raise ValueError(f'select_by must be one of {SELECT_MODES}, got {self.select_by!r}')
        if self.select_by == 'success' and self.eval_task is None:
            raise ValueError("select_by: success needs rollouts; set eval_task (e.g. lift) "
                             "or select_by: val_loss")
        if self.select_by == 'val_loss' and self.val_fraction == 0:
            raise ValueError('select_by: val_loss needs validation episodes; set '
                             'val_fraction > 0 or select_by: last')

    @property
    def selection(self) -> str:
        """The effective ``select_by`` ('auto' resolved)."""
        if self.select_by != 'auto':
            return self.select_by
        if self.eval_task is not None:
            return 'success'
        return 'val_loss' if self.val_fraction > 0 else 'last'

    def to_dict(self) -> dict:
        """Plain dict (YAML-able) of every field."""
        return copy.deepcopy(dataclasses.asdict(self))


def _set_path(d: dict, dotted: str, value) -> None:
    parts = dotted.split('.')
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    d[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``key=value`` strings to a config dict (values parsed as YAML).

    ``policy.<field>[.<sub>]=v`` overrides a field of the policy; a policy given as a preset
    name becomes ``{preset: NAME, <field>: v}``.
    """
    out = copy.deepcopy(data)
    for item in overrides or []:
        key, sep, text = item.partition('=')
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f'override {item!r} is not key=value')
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f'override {item!r}: value is not valid YAML: {e}') from None
        if key.startswith('policy.'):
            if isinstance(out.get('policy'), str):
                out['policy'] = {'preset': out['policy']}
            elif not isinstance(out.get('policy'), dict):
                out['policy'] = {'preset': TrainConfig.policy}
        _set_path(out, key, value)
    return out


def resolve_config_path(name: str | Path) -> Path:
    """Return a config file's path; a bare name is looked up in the package's config/train/."""
    p = Path(name)
    if p.is_file():
        return p
    candidate = share_dir() / 'config' / 'train' / (p.name if p.suffix else p.name + '.yaml')
    if candidate.is_file():
        return candidate
    raise ConfigError(f'{name}: training config not found (also looked for {candidate})')


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      **fields) -> TrainConfig:
    """Build a TrainConfig from a YAML file (or defaults), ``overrides`` and ``fields``.

    ``fields`` (e.g. ``dataset=..., max_minutes=...``) are applied last; None values are
    ignored.
    """
    data, where = {}, 'TrainConfig'
    if path is not None:
        p = resolve_config_path(path)
        raw = load_yaml(p)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f'{p}: a training config is a mapping of field: value')
        data, where = dict(raw or {}), str(p)
    data = apply_overrides(data, overrides)
    data.update({k: v for k, v in fields.items() if v is not None})
    return from_dict(TrainConfig, data, where)


def save_train_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (every field, so the file alone reproduces the run)."""
    save_yaml(cfg.to_dict(), path)


def config_differences(old: dict, new: dict) -> list[str]:
    """Fields (outside :data:`BUDGET_FIELDS`) whose values differ between two config dicts."""
    keys = sorted((set(old) | set(new)) - set(BUDGET_FIELDS))
    return [k for k in keys if old.get(k) != new.get(k)]


def resolve_policy_config(policy):
    """TrainConfig.policy -> ``PolicyConfig``; invalid values raise ConfigError.

    A preset name; ``{preset: NAME, field: value, ...}`` (``presets.preset`` overrides:
    component dicts with the same or no ``name`` merge into the preset's options); or a
    full PolicyConfig dict.
    """
    from il_ros.models.policy import PolicyConfig
    from il_ros.models.presets import preset
    try:
        if isinstance(policy, str):
            return preset(policy)
        if 'preset' in policy:
            over = {k: v for k, v in policy.items() if k != 'preset'}
            return preset(policy['preset'], **over)
        return PolicyConfig.from_dict(dict(policy))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f'policy: {e}') from None

"""TrainConfig: everything a training run needs besides the dataset's content.

:func:`load_train_config` builds it in layers, each later one winning:

1. a **recipe**: ``config/train/NAME.yaml`` (a name, or any YAML path), the TrainConfig
   fields of one method, task-free: ``mse_chunk``, ``lstm_gmm``, ``diffusion``,
   ``lstm_gmm_resnet``, ``demo``;
2. a **task overlay** (``task``): ``config/train/tasks/TASK.yaml`` (``lift``,
   ``reach_around``, ``path``; or a path), what the task needs;
3. ``overrides``: ``key=value`` strings (``--set`` on the command line), the value parsed as
   YAML, dotted keys reaching into the policy config (``policy.head.num_modes=3``);
4. ``fields``: keyword arguments (``dataset=...``, ``max_steps=...``); None is ignored.

A task overlay is a mapping in three parts::

    eval_task: lift                      # 1. TrainConfig fields for every recipe on the
    policy: {cameras: [front, wrist]}    #    task; nested mappings merge into the recipe's
    heads:                               # 2. only when the policy's head has this name
      gmm: {policy: {head: {num_modes: 2, binary_dims: [-1], sticky: false}}}
    recipes:                             # 3. only for the recipe of this name (file stem)
      lstm_gmm: {max_steps: 2000}

The head is the one the recipe and ``overrides`` give (``--set policy.preset=none_gmm``
selects ``heads.gmm``); an overlay never sets ``policy.preset`` or the head's ``name``.
Without ``task``, a recipe of ``config/train/`` whose ``eval_task`` names an overlay gets
that overlay (``demo`` gets ``lift``); other files (your own, a run's config.yaml) load as
they are. bench/success_table.yaml lists the recipe, task and overrides of every published
result. :func:`save_train_config` writes the resolved config into the run folder, so that
the run can be resumed or repeated.
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
from il_ros.training import recipes
from il_ros.training.recipes import resolve_config_path  # noqa: F401 - public here too
from il_ros.training.weighting import check_max_share, DEFAULT_MAX_SHARE, SCHEMES

SELECT_MODES = ('auto', 'success', 'val_loss', 'last')
BUDGET_FIELDS = ('max_steps', 'max_minutes', 'eval_every_steps', 'eval_every_minutes',
                 'eval_episodes', 'save_every_minutes', 'log_every', 'progress',
                 'num_workers', 'cache', 'dataset', 'skip_bad_episodes', 'device',
                 'eval_workers')
"""Fields a resumed run may change (budgets, reporting, data access); the others must match
the run folder's config.yaml, or the resumed run would not continue the same run."""
_FLOAT_FIELDS = ('lr', 'weight_decay', 'min_lr_ratio', 'max_minutes', 'grad_clip', 'ema_decay',
                 'val_fraction', 'eval_every_minutes', 'save_every_minutes',
                 'pre_intervention_weight', 'max_intervention_share')


_NO_LOSS = 1e30      # stands for "no validation loss" in scores (JSON has no infinity)


def selection_score(selection: str, success: float | None, val_loss: float | None) -> tuple:
    """The tuple a run's evaluations are ranked by (higher is better) under ``selection``."""
    loss = val_loss if val_loss is not None and math.isfinite(val_loss) else _NO_LOSS
    if selection == 'success':
        return (success if success is not None else -1.0, -loss)
    if selection == 'val_loss':
        return (-loss,)
    return (0,)   # 'last': every evaluation ties and the newest wins


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
    device: str = 'auto'
    """Where to train: 'auto' (the first CUDA GPU when PyTorch sees one, else the CPU),
    'cpu', 'cuda' or 'cuda:N' (il_ros.training.device). Rollouts during training and
    checkpoints stay on the CPU, so a GPU-trained policy deploys on a CPU controller."""
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
    max_intervention_share: float = DEFAULT_MAX_SHARE
    """iwr / sirius: the most of the total loss weight that upweighting gives the
    intervention frames, in (0, 0.5]; 0.5 is the papers' equal split, which collapsed the
    policy when a round added only a few hundred corrections (docs/experiments/hg-dagger.md)."""
    chunks_within_control: bool = True
    """An action chunk's training target ends where control changed hands in the episode
    (expert: demo, intervention; the policy: policy, pre_intervention; hold), padded and
    masked like an episode's end, so a correction's targets hold the person's actions only
    (il_ros.data.sampler, chunk_by_source). Demonstration-only datasets are unaffected."""
    init_checkpoint: str | None = None
    """Warm start: a checkpoint folder whose weights (its EMA weights when it has them) and
    normalizers the policy starts from (e.g. the previous DAgger round's policy). The policy
    config and robot must match. Ignored when resuming a run (its own state wins)."""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the training process; best on 2 cores with
    the dataset cached in RAM)."""
    cache: str = 'auto'
    """Sampler cache mode: 'auto', 'all' (everything in RAM) or 'lowdim'."""
    skip_bad_episodes: bool = False
    """Every episode is checked when the run starts (checksum, keys and shapes, finite values
    within the dataset's recorded bounds: il_ros.data.validate). False: a bad episode stops
    the run, named; True: bad episodes are left out, named in the output and in
    summary.json, and the normalization stats cover the others."""
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
    eval_workers: int = 1
    """Processes the rollouts are split over (il_ros.training.parallel_eval), one torch
    thread each; 1: in the training process. More where cores are spare, e.g. while a GPU
    trains: the episodes and their results are the same."""
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
                'eval_workers': 1, 'eval_episodes': 1, 'log_every': 1}
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
        if not isinstance(self.chunks_within_control, bool):
            raise ValueError(f'chunks_within_control must be true or false, '
                             f'got {self.chunks_within_control!r}')
        if not isinstance(self.skip_bad_episodes, bool):
            raise ValueError(f'skip_bad_episodes must be true or false, '
                             f'got {self.skip_bad_episodes!r}')
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
        from il_ros.training.device import check_device_name
        check_device_name(self.device)
        if self.weighting not in SCHEMES:
            raise ValueError(f'weighting must be one of {SCHEMES}, got {self.weighting!r}')
        if not (math.isfinite(self.pre_intervention_weight)
                and self.pre_intervention_weight >= 0):
            raise ValueError(f'pre_intervention_weight must be >= 0, '
                             f'got {self.pre_intervention_weight}')
        check_max_share(self.max_intervention_share)
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


def _policy_as_dict(data: dict) -> None:
    """Make ``data['policy']`` a dict (a preset name becomes ``{preset: NAME}``)."""
    if isinstance(data.get('policy'), str):
        data['policy'] = {'preset': data['policy']}
    elif not isinstance(data.get('policy'), dict):
        data['policy'] = {'preset': TrainConfig.policy}


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
            _policy_as_dict(out)
        _set_path(out, key, value)
    return out


def load_train_config(config: str | Path | None = None, overrides: list[str] | None = None,
                      task: str | Path | None = None, **fields) -> TrainConfig:
    """Build a TrainConfig: recipe, task overlay, ``overrides``, ``fields`` (module doc).

    ``config``: a recipe name or a YAML path (None: TrainConfig's defaults). ``task``: a task
    overlay name or path (None: the shipped recipe's ``eval_task`` overlay, if any).
    Unknown recipes and tasks raise ConfigError listing the available ones.
    """
    data, where, name = {}, 'TrainConfig', None
    if config is not None:
        p = resolve_config_path(config)
        raw = load_yaml(p)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f'{p}: a training config is a mapping of field: value')
        data, where, name = dict(raw or {}), str(p), p.stem
        home = data.get('eval_task')
        if task is None and recipes.is_shipped_recipe(p) and home in recipes.task_names():
            task = home
    if task is not None:
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        overlay, opath = recipes.load_task_overlay(task, names)
        head = recipes.head_name(apply_overrides(data, overrides).get('policy',
                                                                      TrainConfig.policy))
        parts = recipes.overlay_parts(overlay, head, name)
        if any('policy' in part for part in parts):
            _policy_as_dict(data)
        for part in parts:
            data = recipes.merge(data, part)
        where = f'{where} + {opath}'
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
    from il_ros.models.policy_config import PolicyConfig
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

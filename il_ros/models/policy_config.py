"""The policy config (:class:`PolicyConfig`) and the robot it is for (:class:`RobotSpec`).

Both are plain dataclasses that round-trip through JSON (``dataclasses.asdict`` and
``from_dict``), so a checkpoint stores them as text, never pickled.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import math

import numpy as np

from il_ros import keys
from il_ros.data.stats import MODES as NORM_MODES
from il_ros.models import registry
from il_ros.models.obs_encoder import AMP_DTYPES


def _default_encoder() -> dict:
    return {'name': 'resnet18'}


def _default_proprio_encoder() -> dict:
    return {'name': 'mlp'}


def _default_core() -> dict:
    return {'name': 'none'}


def _default_head() -> dict:
    return {'name': 'mse'}


@dataclass
class PolicyConfig:
    """How a policy is built and fed: encoders -> history core -> action head.

    The three components are ``{'name': <registered name>, **options}`` dicts; their options
    are the fields of the component's config class (see docs/models.md and
    :mod:`il_ros.models.presets`). ``__post_init__`` fills in every option, so the stored
    config is complete, and rejects impossible combinations.
    """

    cameras: list[str] = field(default_factory=lambda: ['front'])
    """Camera names; each gets its own image encoder (not shared). Images are the dataset /
    obs keys ``image/<camera>``."""
    proprio_keys: list[str] = field(default_factory=lambda: [keys.OBS_JOINT_POS])
    """Low-dim observation keys, normalized and concatenated, then fed to proprio_encoder."""
    encoder: dict = field(default_factory=_default_encoder)
    """Image encoder per camera: 'resnet18' or 'conv4' (+ options)."""
    proprio_encoder: dict = field(default_factory=_default_proprio_encoder)
    """Encoder of the concatenated proprio vector: 'mlp' (+ options)."""
    core: dict = field(default_factory=_default_core)
    """History core: 'none' (frame stack over obs_horizon) or 'lstm' (over seq_len)."""
    head: dict = field(default_factory=_default_head)
    """Action head: 'mse', 'gaussian', 'gmm' or 'diffusion' (+ options)."""
    obs_horizon: int = 2
    """To: frames the 'none' core stacks. Must be 1 for a sequence core (lstm)."""
    action_horizon: int = 1
    """Tp: actions predicted per step (a chunk when > 1; the diffusion default is 16)."""
    action_exec: int = 1
    """Ta: actions of each chunk executed before replanning (receding horizon), <= Tp."""
    seq_len: int = 10
    """Training window of a sequence core (lstm), with a prediction at every step."""
    crop: int | None = 76
    """Random crop size in training, center crop at act time; None: no crop."""
    color_jitter: float = 0.1
    """Brightness/contrast/saturation jitter amount in training; 0 disables."""
    normalize_proprio: str = 'meanstd'
    """Normalizer of proprio keys: 'minmax', 'meanstd' or 'identity'."""
    normalize_action: str = 'minmax'
    """Normalizer of actions; 'minmax' maps the data range to [-1, 1] (diffusion clips
    there)."""
    normalize_images: str = 'meanstd'
    """Per-channel normalizer of [0, 1] images: 'meanstd' (dataset stats) or 'identity'."""
    relative_actions: bool = False
    """Predict each action that commands an observed joint (same name in the RobotSpec) as an
    offset from that joint's measured position when the chunk is planned; the others (a
    gripper) stay absolute. The action normalizer then covers the offsets. Raw actions in
    and out of the policy stay absolute. Needs ``joint_pos`` among the proprio keys."""
    mask_padding: bool = True
    """Leave actions padded past an episode's end out of the loss (lerobot's
    ``action_is_pad``); False trains on the repeated last action (diffusion_policy)."""
    bf16: bool = False
    """Run the image encoders in reduced precision (training and act): autocast to bfloat16
    where the device computes it natively, to float16 on a CUDA GPU without bfloat16 (with a
    GradScaler in training), elsewhere float32 (il_ros.models.obs_encoder.autocast_dtype)."""
    amp_dtype: str = 'auto'
    """With ``bf16``: 'auto' (above), 'bfloat16' (only where native, else float32) or
    'float16' (CUDA only, else float32)."""
    channels_last: bool = False
    """Feed the image encoders NHWC (channels_last) tensors."""

    def __post_init__(self):
        """Fill every component option in; reject impossible combinations."""
        self.cameras, self.proprio_keys = list(self.cameras), list(self.proprio_keys)
        if not self.cameras and not self.proprio_keys:
            raise ValueError('PolicyConfig: give at least one camera or proprio key')
        if len(set(self.cameras)) != len(self.cameras) or any(
                not c or '/' in c or '.' in c for c in self.cameras):
            raise ValueError(f'PolicyConfig: camera names must be unique, non-empty, without '
                             f'"/" or "."; got {self.cameras}')
        self.encoder = registry.config_to_dict('encoder', self.encoder)
        self.proprio_encoder = registry.config_to_dict('encoder', self.proprio_encoder)
        self.core = registry.config_to_dict('core', self.core)
        self.head = registry.config_to_dict('head', self.head)
        if registry.lookup('encoder', self.encoder['name']).modality != 'image':
            raise ValueError(f'PolicyConfig: encoder {self.encoder["name"]!r} is not an image '
                             f'encoder; use one of {image_encoders()}')
        if registry.lookup('encoder', self.proprio_encoder['name']).modality != 'lowdim':
            raise ValueError(f'PolicyConfig: proprio_encoder {self.proprio_encoder["name"]!r} '
                             f'is not a low-dim encoder; use "mlp"')
        for name, v in (('obs_horizon', self.obs_horizon), ('action_horizon',
                        self.action_horizon), ('action_exec', self.action_exec),
                        ('seq_len', self.seq_len)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'PolicyConfig: {name} must be an int >= 1, got {v!r}')
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f'PolicyConfig: amp_dtype must be one of {", ".join(AMP_DTYPES)}, '
                             f'got {self.amp_dtype!r}')
        if self.action_exec > self.action_horizon:
            raise ValueError(f'PolicyConfig: action_exec {self.action_exec} > action_horizon '
                             f'{self.action_horizon}; execute at most the predicted chunk')
        if self.sequence_core and self.obs_horizon != 1:
            raise ValueError(f'PolicyConfig: the {self.core["name"]} core sees one frame per '
                             f'step (its history is seq_len={self.seq_len}); set obs_horizon=1')
        if self.crop is not None and (not isinstance(self.crop, int) or self.crop < 1):
            raise ValueError(f'PolicyConfig: crop must be an int >= 1 or None, got {self.crop}')
        if not (isinstance(self.color_jitter, (int, float)) and 0 <= self.color_jitter < 1):
            raise ValueError(f'PolicyConfig: color_jitter must be in [0, 1), got '
                             f'{self.color_jitter}')
        for name in ('normalize_proprio', 'normalize_action', 'normalize_images'):
            if getattr(self, name) not in NORM_MODES:
                raise ValueError(f'PolicyConfig: {name} {getattr(self, name)!r} unknown; use '
                                 f'one of {NORM_MODES}')
        if self.relative_actions and keys.OBS_JOINT_POS not in self.proprio_keys:
            raise ValueError(f'PolicyConfig: relative_actions needs {keys.OBS_JOINT_POS!r} '
                             f'among proprio_keys (got {self.proprio_keys})')
        if self.normalize_images == 'minmax':
            raise ValueError('PolicyConfig: normalize_images must be meanstd or identity')
        for kind, comp in (('core', self.core), ('head', self.head)):
            _, conf = registry.make_config(kind, comp)
            if hasattr(conf, 'check_policy'):
                conf.check_policy(action_horizon=self.action_horizon,
                                  obs_horizon=self.obs_horizon, seq_len=self.seq_len)

    @property
    def sequence_core(self) -> bool:
        """Whether the core predicts at every step of a seq_len window (lstm)."""
        return bool(registry.lookup('core', self.core['name']).sequence)

    @property
    def window(self) -> int:
        """Observation frames per training sample: seq_len for a sequence core, else To."""
        return self.seq_len if self.sequence_core else self.obs_horizon

    def to_dict(self) -> dict:
        """JSON-able form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown fields raise ValueError naming them."""
        return cls(**_known_fields(cls, d))


def image_encoders() -> list[str]:
    """Return the registered encoders that take images."""
    return [n for n in registry.names('encoder')
            if registry.lookup('encoder', n).modality == 'image']


def _known_fields(cls, d: dict) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f'{cls.__name__}: expected a dict, got {type(d).__name__}')
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown field(s) {unknown}; fields: {sorted(names)}')
    return d


@dataclass
class RobotSpec:
    """What a checkpoint must match at deploy time (names, shapes, cameras, rate).

    An empty ``joint_names`` / ``action_names`` list means "unknown" and matches any names;
    every other field must be equal.
    """

    joint_names: list[str]
    """Joint order of the proprio joint vector (may be empty when unknown)."""
    action_names: list[str]
    """Order of the action vector (may be empty when unknown)."""
    action_dim: int
    """A: size of one action."""
    proprio_dim: int
    """Size of the concatenated proprio keys."""
    cameras: list[str]
    """Camera names, in the policy's order."""
    image_size: tuple[int, int]
    """(H, W) of every camera image before cropping."""
    control_rate_hz: float
    """Control rate the policy was trained at (actions are per tick)."""

    def __post_init__(self):
        """Normalize types; reject inconsistent values."""
        self.joint_names, self.action_names = list(self.joint_names), list(self.action_names)
        self.cameras = list(self.cameras)
        self.image_size = tuple(int(s) for s in self.image_size)
        self.action_dim, self.proprio_dim = int(self.action_dim), int(self.proprio_dim)
        self.control_rate_hz = float(self.control_rate_hz)
        if len(self.image_size) != 2:
            raise ValueError(f'RobotSpec: image_size is (H, W), got {self.image_size}')
        if self.action_names and len(self.action_names) != self.action_dim:
            raise ValueError(f'RobotSpec: {len(self.action_names)} action_names for '
                             f'action_dim {self.action_dim}')
        if self.action_dim < 1 or self.proprio_dim < 0 or not (
                math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise ValueError(f'RobotSpec: need action_dim >= 1, proprio_dim >= 0 and a '
                             f'positive control rate; got {self}')

    def joint_actions(self) -> tuple[list[int], list[int]]:
        """(action indices, joint_pos indices) of the actions named like an observed joint.

        What ``relative_actions`` predicts as offsets; ValueError when there are none.
        """
        pairs = [(i, self.joint_names.index(n)) for i, n in enumerate(self.action_names)
                 if n in self.joint_names]
        if not pairs:
            raise ValueError(f'relative_actions needs actions named like observed joints; '
                             f'actions {self.action_names or "unknown"}, joints '
                             f'{self.joint_names or "unknown"}')
        return [a for a, _ in pairs], [j for _, j in pairs]

    def mismatches(self, other: RobotSpec) -> list[str]:
        """``'field self != other'`` for every field that differs (empty: compatible)."""
        out = []
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in ('joint_names', 'action_names') and (not a or not b):
                continue
            same = (math.isclose(a, b, rel_tol=1e-9) if f.name == 'control_rate_hz'
                    else a == b)
            if not same:
                out.append(f'{f.name} {_fmt(a)} != {_fmt(b)}')
        return out

    def to_dict(self) -> dict:
        """JSON-able form."""
        d = dataclasses.asdict(self)
        d['image_size'] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RobotSpec:
        """Inverse of :meth:`to_dict`; unknown fields raise ValueError naming them."""
        return cls(**_known_fields(cls, d))

    @classmethod
    def from_dataset(cls, dataset, cameras: list[str], proprio_keys: list[str],
                     action_names: list[str] | None = None,
                     joint_names: list[str] | None = None,
                     control_rate_hz: float | None = None) -> RobotSpec:
        """Build the spec of a ``il_ros.data.store.Dataset``.

        Shapes come from the dataset schema; names and rate from episode 0's meta
        (``joint_names``, ``action_names``, ``rate_hz``) unless given.
        """
        meta = dataset.meta(0) if dataset.num_episodes else {}
        missing = [k for k in [*map(keys.image_key, cameras), *proprio_keys, keys.ACTION]
                   if k not in dataset.shapes]
        if missing:
            raise KeyError(f'{missing} not in dataset {dataset.path} (keys: {dataset.keys})')
        sizes = {tuple(dataset.shapes[keys.image_key(c)][:2]) for c in cameras}
        if len(sizes) > 1:
            raise ValueError(f'cameras {cameras} have different image sizes {sorted(sizes)}')
        rate = control_rate_hz or meta.get('rate_hz')
        if not rate:
            raise ValueError(f'dataset {dataset.path} does not record its control rate; pass '
                             f'control_rate_hz')
        return cls(joint_names=joint_names or meta.get('joint_names') or [],
                   action_names=action_names or meta.get('action_names') or [],
                   action_dim=int(np.prod(dataset.shapes[keys.ACTION])),
                   proprio_dim=sum(int(np.prod(dataset.shapes[k])) for k in proprio_keys),
                   cameras=list(cameras), image_size=sizes.pop() if sizes else (0, 0),
                   control_rate_hz=rate)


def _fmt(v) -> str:
    return str(tuple(v)) if isinstance(v, tuple) else str(v)

"""The settings of one ``il-ros dagger`` run: :class:`DaggerConfig`, and the run's constants.

Every field of :class:`DaggerConfig` is documented below its definition; ``il-ros dagger``
builds its flags, defaults and help from these fields (il_ros/dagger/cli.py), so the
defaults live here only.
"""
from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
import inspect
import json
import textwrap

from il_ros import keys
from il_ros.robot import DEFAULT_ROBOT

METHODS = ('hg-dagger', 'dagger', 'dart', 'bc')
"""How a round collects expert labels (il_ros/dagger/__init__.py explains each)."""
WEIGHTINGS = ('uniform', 'iwr', 'sirius')
"""Frame weighting in training (TrainConfig.weighting)."""
DEFAULT_RECIPE = 'mse_chunk'
"""Training recipe when none is given (config/train/mse_chunk.yaml plus the task overlay)."""
COLLECT_SEED = 3000
"""Round episodes use env seeds from here (demos: 0..; evaluation: 1000..; selection
rollouts of the shipped configs: 2000..). Episode i of round k: COLLECT_SEED + (k-1) N + i."""
DEMO_LABEL_TOPIC = keys.TOPIC_TELEOP_COMMAND
"""Action label of scripted demos: the expert's clean command (DART noise is executed only)."""
EXPERT_LABEL_TOPIC = 'il/expert/label'
"""Action label under ``--method dagger``: the supervisor node's expert action for every
state (il_ros.ros.supervisor.TOPIC_EXPERT_LABEL; the core may not import il_ros.ros)."""
STALE_ACTION_HOLD = 4.0
"""Conversion of a round: a tick whose label (command) is older than this many periods is
labelled hold instead of rejecting the episode (strict ``il-ros convert`` rejects there)."""
RESUME_FIELDS = ('task', 'method', 'weighting', 'episodes_per_round', 'demos', 'init_dataset',
                 'init_checkpoint', 'config', 'noise', 'cameras', 'image_size', 'rate_hz',
                 'seed', 'overrides', 'pre_intervention', 'max_episode_steps')
"""Settings a resumed run must share with the run folder's (``rounds`` may grow; budgets,
evaluation size, threads and gate parameters may change)."""


class DaggerError(RuntimeError):
    """The run cannot go on; the message says why."""


@dataclass
class DaggerConfig:
    """One ``il-ros dagger`` run (il_ros/dagger/__init__.py describes the rounds)."""

    task: str
    """Sim task: lift, reach_around or path."""
    robot: str = DEFAULT_ROBOT
    """Robot description: a name under config/robots or a robot YAML path (every node of
    the graph takes it)."""
    out: str | None = None
    """Run folder (state, dataset, rounds, report); default runs/dagger/TASK_METHOD_WEIGHTING.
    Run the same command again to resume it."""
    rounds: int = 3
    """Rounds after round 0 (behavioral cloning on the initial data)."""
    episodes_per_round: int = 10
    """Episodes each round collects (deployed, or scripted for dart and bc)."""
    method: str = 'hg-dagger'
    """hg-dagger (supervisor takeovers), dagger (the expert labels every visited state),
    dart (noisy scripted demos) or bc (scripted demos)."""
    weighting: str = 'uniform'
    """Frame weights in training: uniform (with hg-dagger: demos and interventions only),
    iwr or sirius (every frame, reweighted)."""
    demos: int = 20
    """Scripted demos recorded for round 0 (ignored with init_dataset)."""
    init_dataset: str | None = None
    """Start from this converted dataset (copied into OUT/dataset) instead of recording
    demos."""
    init_checkpoint: str | None = None
    """Round 0's policy (skips round 0's training)."""
    config: str = DEFAULT_RECIPE
    """Training recipe: a name under config/train/ or a YAML path; the task overlay
    config/train/tasks/TASK.yaml is applied on top."""
    max_minutes: float | None = None
    """Training budget per round in minutes (default: the recipe's)."""
    max_steps: int | None = None
    """Training steps of round 0, and of later rounds unless round_max_steps is set
    (default: the recipe's)."""
    round_max_steps: int | None = None
    """Training steps of rounds 1.. (warm-started from the round before); default
    max_steps. bench/dagger_experiment.py's --train-steps/--round-steps are the pair."""
    eval_episodes: int = 20
    """Episodes of each round's in-process evaluation (seeds from keys.EVAL_SEED)."""
    noise: float = 0.05
    """DART noise (rad) on the executed command for method dart (round 0's demos
    included)."""
    cameras: tuple[str, ...] | None = None
    """Cameras the sim renders and the dataset stores, front and/or wrist (default: those
    of the training config's policy)."""
    image_size: tuple[int, int] = (84, 84)
    """(H, W) of the rendered and stored images."""
    rate_hz: float = 20.0
    """Control rate of the sim, the controller and the dataset."""
    rtf: float = 4.0
    """Real-time factor for recording scripted demos (deployment runs in real time)."""
    seed: int = 0
    """Training seed (TrainConfig.seed)."""
    max_episode_steps: int | None = None
    """Control steps per deployed episode (default: the task's limit)."""
    pre_intervention: int = 10
    """Policy frames before a takeover labelled pre_intervention."""
    threads: int = 2
    """torch threads for training and evaluation."""
    overrides: list[str] = field(default_factory=list)
    """Training config overrides, KEY=VALUE (YAML values), applied after the round's own
    (seed, weighting, label_weights, init_checkpoint)."""
    supervisor: dict = field(default_factory=dict)
    """Supervisor node parameters (the takeover gate: config/supervisor.yaml), e.g.
    {'deviation_m': 0.03}; on the command line ``--gate deviation_m=0.03``."""

    def __post_init__(self):
        from il_ros.sim.registry import TASKS
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r}; valid tasks: {", ".join(TASKS)}')
        if self.method not in METHODS:
            raise ValueError(f'method must be one of {", ".join(METHODS)}, got '
                             f'{self.method!r}')
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f'weighting must be one of {", ".join(WEIGHTINGS)}, got '
                             f'{self.weighting!r}')
        if self.rounds < 0:
            raise ValueError(f'rounds must be >= 0 (0: round 0 only), got {self.rounds}')
        if self.episodes_per_round < 1:
            raise ValueError(f'episodes_per_round must be >= 1, got {self.episodes_per_round}')
        if self.init_dataset is None and self.demos < 1:
            raise ValueError('round 0 needs data: demos >= 1 (--demos N) or an init_dataset '
                             '(--init-dataset DIR)')
        if self.eval_episodes < 1:
            raise ValueError(f'eval_episodes must be >= 1, got {self.eval_episodes}')
        for name in ('max_minutes', 'max_steps', 'round_max_steps', 'max_episode_steps'):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f'{name} must be > 0 (or unset for the default), got {value}')
        if self.noise < 0:
            raise ValueError(f'noise must be >= 0 rad, got {self.noise}')
        self.image_size = tuple(int(v) for v in self.image_size)
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f'image_size must be (H, W) >= 8 px, got {self.image_size}')
        if not self.rate_hz > 0 or not self.rtf > 0:
            raise ValueError(f'rate_hz and rtf must be > 0, got {self.rate_hz}, {self.rtf}')
        if self.threads < 1:
            raise ValueError(f'threads must be >= 1, got {self.threads}')
        bad = [o for o in self.overrides if '=' not in o]
        if bad:
            raise ValueError(f'overrides are KEY=VALUE, got {bad}')
        self.overrides = list(self.overrides)
        self.supervisor = dict(self.supervisor)
        if self.out is None:
            self.out = f'runs/dagger/{self.task}_{self.method}_{self.weighting}'
        if self.config is None:
            self.config = DEFAULT_RECIPE
        if self.cameras is None:           # last: it reads the training config
            self.cameras = training_cameras(self.config, self.task, self.overrides)
        self.cameras = tuple(self.cameras)
        if not self.cameras:
            raise ValueError('cameras: name at least one (front and/or wrist)')

    def to_dict(self) -> dict:
        """The settings as JSON types (what state.json and report.json store)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def label_weights(self) -> dict:
        """Per-label training weights of the method.

        HG-DAgger with uniform weighting trains on demos and interventions only; otherwise
        only hold frames get 0. Empty when the user's overrides set label_weights
        themselves (theirs come last).
        """
        for item in self.overrides:
            if item.split('=', 1)[0].strip() == 'label_weights':
                return {}
        if self.method == 'hg-dagger' and self.weighting == 'uniform':
            return {keys.SOURCE_POLICY: 0.0, keys.SOURCE_PRE_INTERVENTION: 0.0,
                    keys.SOURCE_HOLD: 0.0}
        return {keys.SOURCE_HOLD: 0.0}

    def label_topic(self, round_index: int) -> str:
        """The topic whose messages become the action labels of a round's bags."""
        if round_index == 0 or self.method in ('dart', 'bc'):
            return DEMO_LABEL_TOPIC
        if self.method == 'dagger':
            return EXPERT_LABEL_TOPIC
        return keys.TOPIC_COMMAND        # hg-dagger: what ran (the policy's or the human's)

    def demo_noise(self) -> float:
        """DART noise of this run's scripted demos (0 unless the method is dart)."""
        return self.noise if self.method == 'dart' else 0.0


def training_cameras(config: str, task: str, overrides=()) -> tuple[str, ...]:
    """Cameras of the policy of training ``config`` with the task overlay and ``overrides``.

    Raises ValueError naming the config when it cannot be read.
    """
    from il_ros.config import ConfigError
    from il_ros.training.config import load_train_config, resolve_policy_config
    try:
        tc = load_train_config(config, list(overrides), task=task)
        return tuple(resolve_policy_config(tc.policy).cameras)
    except ConfigError as e:
        raise ValueError(f'training config {config!r} (for the default cameras): {e}') from None


def field_docs(cls) -> dict[str, str]:
    """Return ``{field name: docstring}`` of a dataclass.

    Its fields are documented by a string literal right below them (read from the class
    source).
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs

r"""``il-ros dagger``: rounds of deploy -> record -> convert + aggregate -> retrain -> hot-reload.

    il-ros dagger --task path --rounds 4 --episodes-per-round 10 --out runs/dagger/path \
        [--method hg-dagger|dagger|dart|bc] [--weighting uniform|iwr|sirius] [--demos 20]

Round 0 is behavioral cloning on the initial data: ``--demos`` scripted demonstrations
recorded through the ``record`` graph (or ``--init-dataset``), trained from scratch (or
``--init-checkpoint``). Each round k >= 1 then, by ``--method``:

- ``hg-dagger`` (default): deploys the round k-1 policy through the ``dagger`` node graph
  (sim_robot in real time, controller, supervisor, recorder, trainer); the scripted
  supervisor takes over through the controller's takeover channel when the run goes wrong
  and hands back once it recovered; whole episodes are recorded with
  ``/il/control_source``. Expert-labelled steps: the intervention frames.
- ``dagger``: deploys the policy alone (supervisor disarmed); every visited state is
  labelled by the scripted expert (the supervisor publishes the expert's action for every
  ``/sim/state`` on ``/il/expert/label``, which becomes the action label). Expert-labelled
  steps: every frame.
- ``dart``: records ``--episodes-per-round`` more scripted demos with DART noise on the
  executed command (clean labels); ``bc``: the same without noise. Expert-labelled steps:
  every frame.

then converts the round's bags and appends them to ``OUT/dataset`` (D <- D u D_round;
bags already converted are skipped by content), retrains through the trainer node's
``~/train`` with the training recipe (``--config``, default ``mse_chunk``, with the task's
overlay), ``weighting`` and a warm start from the round k-1 policy (``init_checkpoint``),
hot-loads the new best checkpoint into the running controller, and evaluates it in-process
on seeds EVAL_SEED.. (no supervisor).

Frame weights (``--weighting``, TrainConfig.weighting; HOLD frames always get 0): for
``hg-dagger``, ``uniform`` is HG-DAgger proper (train on the demos and the interventions
only: policy and pre-intervention frames get weight 0); ``iwr`` and ``sirius`` use every
frame, reweighted. ``--set label_weights=...`` replaces these defaults.

Layout of OUT::

    state.json                 the configuration and every finished phase (resume point)
    dataset/                   the aggregated dataset
    round_00/bags/ (demos), round_KK/bags/ (the round's episodes + episodes.jsonl)
    round_KK/train/            the training run (checkpoints/best is the round's policy)
    round_KK/train_recipe.yaml the recipe with the task overlay the trainer node starts from
    round_KK/eval.json         the in-process evaluation
    report.json, report.md, report.png, logs/

Resume: run the same command again. Finished phases are skipped; a round's collection goes
on from its last complete episode (an episode cut off mid-way is moved to
``round_KK/interrupted/``); conversion skips converted bags; training resumes its run
folder. ``--rounds`` may grow between runs; the other settings must match.

The package: ``config`` (DaggerConfig, documented; the CLI's defaults), ``rounds`` (the
round logic, with its collector, trainer and evaluator passed in), ``data`` (a round's bags
and their conversion), ``collect`` (the defaults over the ROS node graph), ``report``
and ``cli``.
"""
from il_ros.dagger.cli import add_dagger_parser, cmd_dagger, main
from il_ros.dagger.collect import InProcessEvaluator, RosGraph, run_dagger
from il_ros.dagger.config import (COLLECT_SEED, DaggerConfig, DaggerError, DEFAULT_RECIPE,
                                  DEMO_LABEL_TOPIC, EXPERT_LABEL_TOPIC, METHODS,
                                  STALE_ACTION_HOLD, WEIGHTINGS)
from il_ros.dagger.rounds import Collector, DaggerRun, Evaluator, Trainer, TrainRequest

__all__ = ['COLLECT_SEED', 'Collector', 'DEFAULT_RECIPE', 'DEMO_LABEL_TOPIC', 'DaggerConfig',
           'DaggerError', 'DaggerRun', 'EXPERT_LABEL_TOPIC', 'Evaluator', 'InProcessEvaluator',
           'METHODS', 'RosGraph', 'STALE_ACTION_HOLD', 'TrainRequest', 'Trainer', 'WEIGHTINGS',
           'add_dagger_parser', 'cmd_dagger', 'main', 'run_dagger']

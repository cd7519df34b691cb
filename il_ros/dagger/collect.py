"""The default collector, trainer and evaluator of the rounds: the ROS node graph.

- :class:`RosGraph` is both the :class:`~il_ros.dagger.rounds.Collector` and the
  :class:`~il_ros.dagger.rounds.Trainer`. Scripted demos are recorded in-process with
  :func:`il_ros.recording.record_episodes` (the ``record`` graph). Deployment and training
  run in the ``dagger`` graph (sim_robot in real time, controller, supervisor, recorder,
  trainer), driven by :class:`il_ros.ros.dagger_driver.DaggerDriver`: each episode is reset,
  recorded and judged through the nodes' services; training goes through the trainer
  node's ``~/train`` (started with ``output_root`` = the run's folder, which holds every
  round's run folder) and its new best checkpoint is hot-loaded into the running controller.
  The graph is started when first needed, restarted when the running one does not fit, and
  stopped by :meth:`RosGraph.close` (one sim per ROS domain: it is stopped while demos are
  recorded). Every process of the run shares one random ROS domain.
- :class:`InProcessEvaluator`: ``il_ros.training.evaluate.evaluate_checkpoint``.

il_ros.ros is imported only when a graph starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, Sequence

from il_ros.dagger.config import DaggerConfig, DaggerError
from il_ros.dagger.rounds import DaggerRun, say, TrainRequest

GRAPH_NODES = ['sim_robot', 'controller', 'supervisor', 'recorder', 'trainer']
"""The ``dagger`` graph's members run for deployment (training needs only the trainer)."""


class RosGraph:
    """Collector and trainer over the ROS node graph (see the module doc)."""

    def __init__(self, cfg: DaggerConfig, log_dir: Path, log: Callable[[str], None] = say):
        self.cfg = cfg
        self.log_dir = Path(log_dir)
        self.say = log
        self.runner = None
        self.driver = None
        self.nodes: set[str] = set()
        self.next_seed: int | None = None
        self._env: dict | None = None

    def __enter__(self) -> RosGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def env(self) -> dict:
        """Environment of every node process of the run (one random ROS domain)."""
        if self._env is None:
            from il_ros.launcher import ros_env
            self._env = ros_env()
        return self._env

    # ------------------------------------------------------------------ the graph
    def graph(self, need: set[str], first_seed: int | None = None):
        """Return the driver of a ``dagger`` graph running at least the nodes ``need``.

        Its sim episodes continue at ``first_seed`` when given. The running graph is
        restarted when it does not fit.
        """
        fits = (self.driver is not None and need <= self.nodes
                and (first_seed is None or 'sim_robot' not in self.nodes
                     or first_seed == self.next_seed))
        if fits:
            return self.driver
        self.close()
        from il_ros.ros.dagger_driver import start_sim_graph
        sim = 'sim_robot' in need
        nodes = GRAPH_NODES if sim else ['trainer']
        first = first_seed if first_seed is not None else 1
        self.say(f'starting the dagger graph ({", ".join(nodes)}; logs in {self.log_dir})')
        cfg = self.cfg
        self.runner, self.driver = start_sim_graph(
            cfg.task, self.log_dir, self.log_dir.parent / 'bags_unused', first, cfg.cameras,
            None, cfg.rate_hz, nodes=nodes, supervisor_params=cfg.supervisor,
            # the rounds set out_dir per round: every run folder lies in the run's folder
            trainer_params={'output_root': str(Path(cfg.out).resolve())}, env=self.env)
        self.nodes = set(nodes)
        self.next_seed = first if sim else None
        return self.driver

    def close(self) -> None:
        """Stop the graph (if one runs): the driver first, then the node processes."""
        if self.driver is None:
            return
        try:
            self.driver.close()
        finally:
            self.driver = None
            if self.runner is not None:
                self.runner.stop()
            self.runner = None
            self.nodes = set()

    # ------------------------------------------------------------------ Collector
    def record_demos(self, bags: Path, episodes: int, first_seed: int, noise: float) -> None:
        """Record scripted demos through the ``record`` graph (see Collector)."""
        from il_ros.recording import record_episodes, RecordError
        self.close()                       # one sim per ROS domain
        cfg = self.cfg
        try:
            result = record_episodes(bags, cfg.task, episodes, rtf=cfg.rtf, seed=first_seed,
                                     noise=noise, cameras=cfg.cameras, env=self.env)
        except RecordError as e:
            raise DaggerError(f'recording demos: {e}') from None
        if not result.ok:
            raise DaggerError(f'recording demos into {bags} failed: {result.error}')

    def deploy(self, checkpoint: str, bags: Path, seeds: Sequence[int],
               max_steps: int | None, supervise: bool) -> Iterator[dict]:
        """Run the policy through the ``dagger`` graph, one recorded episode per seed.

        See :meth:`il_ros.dagger.rounds.Collector.deploy`.
        """
        seeds = list(seeds)
        if not seeds:
            return
        driver = self.graph({'sim_robot', 'trainer'}, seeds[0])
        driver.set_params('recorder', {'output_dir': str(Path(bags).resolve())})
        if driver.status is None or driver.status.get('checkpoint') != checkpoint:
            driver.load_checkpoint(checkpoint)
        limit = max_steps or driver.mirror.max_steps
        for seed in seeds:
            episode = driver.run_episode(seed, limit, supervise=supervise)
            self.next_seed = seed + 1
            yield episode

    # ------------------------------------------------------------------ Trainer
    def train(self, request: TrainRequest, progress: Callable[[dict], None]) -> dict:
        """Train through the trainer node; hot-load the result into a running controller.

        See :meth:`il_ros.dagger.rounds.Trainer.train`.
        """
        run_dir = Path(request.out_dir)
        recipe = resolve_recipe(request, run_dir.parent / 'train_recipe.yaml')
        driver = self.graph({'trainer'})
        params = {'config': str(recipe), 'dataset': request.dataset, 'out_dir': str(run_dir),
                  'max_minutes': float(request.max_minutes or 0.0),
                  'max_steps': int(request.max_steps or 0), 'overrides': request.overrides,
                  'threads': int(request.threads)}
        try:
            status = driver.train(params, progress=progress)
        except RuntimeError as e:
            raise DaggerError(f'training {run_dir} failed: {e} (trainer log: '
                              f'{self.log_dir / "trainer.log"})') from None
        summary = json.loads((run_dir / 'summary.json').read_text())
        summary['message'] = status.get('message')
        best = (summary.get('best') or {}).get('path') or summary['last']
        if 'controller' in self.nodes:
            self.say(f'hot-loading {best} into the controller')
            driver.load_checkpoint(best)
        return summary


def resolve_recipe(request: TrainRequest, path: Path) -> Path:
    """Write the training recipe with the task overlay applied to ``path``; return ``path``.

    The trainer node adds the round's overrides, dataset and budget to it. Raises
    DaggerError when the config with them is invalid.
    """
    from il_ros.config import ConfigError
    from il_ros.training.config import load_train_config, save_train_config
    try:
        base = load_train_config(request.config, [], task=request.task)
        save_train_config(base, path)
        load_train_config(path, request.overrides, dataset=request.dataset,
                          max_minutes=request.max_minutes, max_steps=request.max_steps)
    except ConfigError as e:
        raise DaggerError(f'training config: {e}') from None
    return path


class InProcessEvaluator:
    """The round's policy alone in the sim, in this process (see Evaluator)."""

    def __init__(self, threads: int = 2):
        self.threads = threads

    def evaluate(self, checkpoint: str, task: str, episodes: int, seed: int,
                 max_steps: int | None) -> dict:
        """il_ros.training.evaluate.evaluate_checkpoint with ``threads`` torch threads."""
        import torch

        from il_ros.training.evaluate import evaluate_checkpoint
        torch.set_num_threads(max(1, self.threads))
        return evaluate_checkpoint(checkpoint, task, episodes=episodes, seed=seed,
                                   progress=False, max_steps=max_steps)


def run_dagger(cfg: DaggerConfig) -> dict:
    """Run (or resume) ``cfg`` over the ROS node graph; returns the report."""
    out = Path(cfg.out).resolve()
    with RosGraph(cfg, out / 'logs') as graph:
        run = DaggerRun(cfg, collector=graph, trainer=graph,
                        evaluator=InProcessEvaluator(cfg.threads))
        return run.run()

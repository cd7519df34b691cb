"""Record scripted episodes through the real node graph: the library behind ``il-ros record``.

:func:`record_episodes` starts the ``record`` graph of config/graph.yaml (sim_robot in
lockstep, teleop with the task's scripted expert, the recorder in auto-episode mode) as
separate processes over DDS on their own ROS domain, follows the episodes' metadata files
with a progress bar, and returns a :class:`RecordResult` once the recorder has written the
requested episodes (or a node died, or time ran out). ``il-ros record``, ``il-ros demo`` and
the DAgger rounds all call it; nothing runs the CLI as a subprocess.

The recorder records the robot's selected cameras, its joint states and command and the
package's topics, and is told the rates the robot publishes its cameras and joint states at
(il_ros.graph_plan.recorder_topics / expected_rates, which ``record.launch.py`` uses too),
so each episode's metadata says per topic how many messages were lost;
an episode that lost more than the recorder's ``max_loss_fraction`` is ``complete_with_loss``:
counted as recorded, and listed by :attr:`RecordResult.with_loss`.

Errors: :class:`RecordError` when recording cannot start (unknown robot, task or camera,
fewer than one episode, an output folder that cannot be created); a recording that starts and then
fails (a node exits, the wall-clock limit passes) returns ``ok=False`` with ``error``
naming the node and the end of its log. The caller decides what that means (an exit
code, an exception).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import time

from il_ros.data.episodes import (episode_statuses, lossy_topics, read_episode_meta,
                                  RECORDED_STATUSES, STATUS_COMPLETE_WITH_LOSS,
                                  STATUS_RECORDING, STATUS_UNKNOWN)
from il_ros.robot import DEFAULT_ROBOT, load_robot

LOG_FOLDER = '.logs'
"""Node logs go to ``OUT/.logs/<node>.log`` (hidden: the folder is an episode folder)."""


class RecordError(RuntimeError):
    """Recording cannot start; the message says what to change."""


@dataclass
class RecordResult:
    """What one :func:`record_episodes` call recorded."""

    out: Path
    """The episode folder."""
    episodes: int
    """Episodes requested."""
    statuses: dict[str, str] = field(default_factory=dict)
    """``{episode JSON file name: status}`` of the episodes this call wrote
    (il_ros.data.episodes STATUS_*; episodes already in ``out`` are left out)."""
    ok: bool = False
    """The recorder finished the requested episodes and exited cleanly."""
    error: str = ''
    """Why not, when ``ok`` is False (a node that died with the end of its log, a timeout)."""
    log_dir: Path | None = None
    """The node logs."""

    @property
    def complete(self) -> int:
        """Episodes of this call recorded to their end (complete or complete_with_loss)."""
        return sum(s in RECORDED_STATUSES for s in self.statuses.values())

    @property
    def with_loss(self) -> dict[str, list[str]]:
        """The complete_with_loss episodes of this call and their lossy topics.

        ``{episode JSON name: ['topic: lost ~N of M (P%)', ...]}``.
        """
        return {name: lossy_topics(read_episode_meta(self.out / name))
                for name, s in self.statuses.items() if s == STATUS_COMPLETE_WITH_LOSS}

    def check(self) -> RecordResult:
        """Return self; raise RecordError with :attr:`error` when the recording failed."""
        if not self.ok:
            raise RecordError(self.error or 'recording failed')
        return self


def record_graph(out, task: str, episodes: int, *, robot: str = DEFAULT_ROBOT,
                 rtf: float = 4.0, seed: int = 0, noise: float = 0.0, cameras=None,
                 episode_timeout: float = 30.0, env: dict | None = None, namespace: str = ''):
    """The ``record`` graph of one recording, planned but not started (a GraphRunner).

    What ``ros2 launch il_ros record.launch.py`` starts for the same arguments: the recorder's
    topics and expected rates come from the robot description (il_ros.graph_plan). Raises
    RecordError when the arguments are wrong (see :func:`record_episodes`); creates nothing.
    """
    from il_ros.config import ConfigError
    from il_ros.launcher import GraphRunner
    try:
        desc = load_robot(robot)
    except ConfigError as e:
        raise RecordError(str(e)) from None
    tasks = sorted(desc.sim.scenes) if desc.sim else []
    if task not in tasks:
        raise RecordError(f'unknown task {task!r}; valid tasks for robot {desc.name}: '
                          f'{", ".join(tasks) or "none (the robot has no sim section)"}')
    if episodes < 1:
        raise RecordError(f'episodes must be >= 1, got {episodes}')
    if cameras is not None and not list(cameras):
        raise RecordError(f'name at least one camera of robot {desc.name}: '
                          f'{", ".join(desc.camera_names)}')
    out = Path(out)
    values = {'robot': robot, 'task': task, 'episodes': episodes,
              'out': str(out.resolve()), 'rtf': rtf, 'seed': seed, 'noise': noise,
              'cameras': None if cameras is None else list(cameras),
              'teleop_mode': 'scripted', 'namespace': namespace}
    extra = {'recorder': {'episode_timeout_s': episode_timeout}}
    try:
        return GraphRunner('record', values, out / LOG_FOLDER, extra_params=extra, env=env)
    except ConfigError as e:
        raise RecordError(str(e)) from None


def record_episodes(out, task: str, episodes: int, *, robot: str = DEFAULT_ROBOT,
                    rtf: float = 4.0, seed: int = 0, noise: float = 0.0, cameras=None,
                    episode_timeout: float = 30.0, timeout: float = 3600.0,
                    env: dict | None = None, progress: bool = True,
                    namespace: str = '') -> RecordResult:
    """Record ``episodes`` scripted ``task`` episodes into the folder ``out``.

    ``robot``: robot description (name under config/robots or a YAML path); ``rtf``: sim
    real-time factor; ``seed``: env seed of the first episode (episode i uses ``seed + i``);
    ``noise``: DART noise (rad) on the executed command, the clean expert action being the
    label on ``/il/teleop/command``; ``cameras``: the robot's cameras to render and record
    (None: its first camera, ``front`` on the shipped robots);
    ``episode_timeout``: sim seconds before an episode is stopped as failed; ``timeout``:
    wall-clock limit (s) of the whole recording; ``env``: environment of the node processes
    (default ``il_ros.launcher.ros_env()``: a random ROS domain); ``progress``: print the
    start line and a progress bar; ``namespace``: the nodes' ROS namespace ('' none; the bags
    then store /NS/joint_states etc., see il_ros.data.topic_map).

    Raises RecordError when recording cannot start; otherwise returns the result, whose
    ``ok`` says whether every episode was recorded (see the module doc).
    """
    runner = record_graph(out, task, episodes, robot=robot, rtf=rtf, seed=seed, noise=noise,
                          cameras=cameras, episode_timeout=episode_timeout, env=env,
                          namespace=namespace)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RecordError(f'cannot create output folder {out}: {e}') from None
    before = set(episode_statuses(out))
    log_dir = runner.log_dir
    result = RecordResult(out=out, episodes=episodes, log_dir=log_dir)
    if progress:
        print(f'recording {episodes} {task} episodes of {robot} -> {out} (ROS_DOMAIN_ID='
              f'{runner.env.get("ROS_DOMAIN_ID", "0")}, logs in {log_dir})', flush=True)
    deadline = time.monotonic() + timeout
    with runner, _ProgressBar(progress, episodes, task) as bar:
        while True:
            dead = runner.dead()        # before reading: a node's last episode is on disk
            result.statuses = episode_statuses(out, skip=before)
            done = [s for s in result.statuses.values()
                    if s not in (STATUS_RECORDING, STATUS_UNKNOWN)]
            bar.update(len(done), result.complete)
            if dead:
                recorder = runner.procs['recorder'].popen
                result.ok = recorder.poll() == 0 and len(done) >= episodes
                if not result.ok:
                    result.error = f'{len(done)} of {episodes} episodes finished; ' + '\n'.join(
                        f'node {p.name} exited with code {p.popen.returncode}; last lines '
                        f'of {p.log}:\n{p.tail()}' for p in dead)
                break
            if time.monotonic() >= deadline:
                result.error = (f'timed out after {timeout:.0f}s with {len(done)} of '
                                f'{episodes} episodes finished (node logs in {log_dir})')
                break
            time.sleep(0.2)
    result.statuses = episode_statuses(out, skip=before)   # as the stopped nodes left them
    return result


class _ProgressBar:
    """A tqdm bar of finished episodes (complete ones as ``ok``), or nothing."""

    def __init__(self, show: bool, total: int, desc: str):
        self.tqdm = None
        if show:
            from tqdm import tqdm
            self.tqdm = tqdm(total=total, unit='ep', desc=desc)

    def update(self, done: int, complete: int) -> None:
        if self.tqdm is not None:
            self.tqdm.n = done
            self.tqdm.set_postfix(ok=complete, refresh=False)
            self.tqdm.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tqdm is not None:
            self.tqdm.close()

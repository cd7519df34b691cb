"""What a run reads before it trains: its dataset (opened and checked) and its run folder.

- :func:`open_checked_dataset` opens the dataset and checks every episode
  (il_ros.data.validate: checksum, keys and shapes, finite values, recorded bounds). A bad
  episode stops the run with one line naming it (:class:`DatasetError`), or, with
  ``skip_bad_episodes``, is left out and reported through ``say``; the normalization stats
  then cover the good episodes only. It also reads the image preprocessing the episodes
  were converted with (:mod:`il_ros.images`; episodes that disagree stop the run).
- :func:`check_run_dir` refuses a run folder that is a file or cannot be created.

Errors: :class:`TrainError` (the run failed: exit 1 of ``il-ros train``) and its subclass
:class:`TrainInputError` (bad inputs, before anything was trained: exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Callable

from il_ros import keys
from il_ros.data.stats import chunk_offsets, merge_moments, moments, stats_from_moments
from il_ros.data.store import Dataset, is_image_key, StoreError
from il_ros.data.validate import check_dataset, DatasetCheck
from il_ros.images import common_preprocess, Preprocess


class TrainError(RuntimeError):
    """A run cannot start or continue; the message says why and what to change."""


class TrainInputError(TrainError):
    """The run's inputs (dataset, run folder, checkpoint path) are unusable; nothing ran."""


class DatasetError(TrainInputError):
    """The dataset is missing or corrupt, or one of its episodes is bad (named)."""


@dataclass
class CheckedDataset:
    """An opened dataset, its check, and the episodes a run may train on."""

    ds: Dataset
    check: DatasetCheck
    skipped: list
    """The problems of the episodes left out (empty unless skipping)."""
    preprocess: Preprocess | None = None
    """The image preprocessing its episodes were converted with (None: no cameras); the
    trainer copies it into every checkpoint."""

    @property
    def good(self) -> list[int]:
        """Episodes without a problem."""
        return self.check.good

    @property
    def stats(self) -> dict:
        """Normalization stats of the episodes trained on (all, or the good ones)."""
        return self.ds.stats_over(self.good) if self.skipped else self.ds.stats

    def policy_stats(self, pcfg, spec) -> dict:
        """The stats a policy with config ``pcfg`` for RobotSpec ``spec`` normalizes with."""
        if not pcfg.relative_actions:
            return self.stats
        return {**self.stats, keys.ACTION: self.relative_action_stats(spec, pcfg.action_horizon)}

    def relative_action_stats(self, spec, horizon: int) -> dict:
        """Stats of a ``relative_actions`` policy's action targets over the trained episodes.

        ``spec`` is its RobotSpec, ``horizon`` its actions per chunk. TrainInputError when
        no action is named like an observed joint.
        """
        try:
            a_idx, q_idx = spec.joint_actions()
        except ValueError as e:
            raise TrainInputError(f'{self.ds.path}: {e}') from None
        acc = None
        for ep in self.good:
            d = self.ds.episode(ep, [keys.ACTION, keys.OBS_JOINT_POS])
            m = moments(chunk_offsets(d[keys.ACTION], d[keys.OBS_JOINT_POS], a_idx, q_idx,
                                      horizon))
            acc = m if acc is None else merge_moments(acc, m)
        return stats_from_moments(acc)

    def summary(self) -> dict:
        """What the check found and skipped, for the run's summary.json."""
        return {**self.check.to_dict(), 'skipped': [p.to_dict() for p in self.skipped]}


def open_checked_dataset(path, skip_bad: bool = False,
                         say: Callable[[str], None] = print) -> CheckedDataset:
    """Open the dataset at ``path`` and check every episode (see the module doc).

    Raises DatasetError (one line) when the dataset cannot be opened, when an episode is
    bad and ``skip_bad`` is False, or when no episode is left. ``say`` gets one line per
    skipped episode and the note about episodes without a checksum.
    """
    try:
        ds = Dataset(path, check_files=False)
    except StoreError as e:
        raise DatasetError(str(e)) from None
    if ds.num_episodes == 0:
        raise DatasetError(f'{ds.path}: the dataset has no episodes')
    check = check_dataset(ds)
    if check.bad and not skip_bad:
        more = len(check.bad) - 1
        others = (f' (and {more} more bad episode{"s" if more > 1 else ""}: '
                  f'{", ".join(str(p.episode) for p in check.bad[1:6])}'
                  f'{", ..." if more > 5 else ""})' if more else '')
        raise DatasetError(f'{ds.path}: {check.bad[0]}{others}; repair or remove '
                           f'{"them" if more else "it"}, or skip bad episodes '
                           f'(--skip-bad-episodes, skip_bad_episodes: true)')
    if check.note:
        say(check.note)
    for p in check.bad:
        say(f'{ds.path}: skipping {p}')
    if not check.good:
        raise DatasetError(f'{ds.path}: every one of its {ds.num_episodes} episodes is bad; '
                           f'first: {check.bad[0]}')
    sizes = sorted({tuple(ds.shapes[k][:2]) for k in ds.keys if is_image_key(k)})
    try:
        pre = common_preprocess([ds.meta(i).get('preprocess') for i in check.good],
                                sizes[0]) if len(sizes) == 1 else None
    except ValueError as e:
        raise DatasetError(f'{ds.path}: {e}') from None
    return CheckedDataset(ds, check, list(check.bad), pre)


def check_run_dir(out) -> Path:
    """Return ``out`` as a Path; TrainInputError when it is a file or cannot be created.

    Nothing is created: the nearest existing parent must be a writable folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TrainInputError(f'run folder {out} exists and is not a folder; choose another '
                              f'--out')
    parent = out
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise TrainInputError(f'run folder {out}: {parent} is not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TrainInputError(f'run folder {out}: {parent} is not writable')
    return out

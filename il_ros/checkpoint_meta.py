"""Read a policy checkpoint's JSON description without torch (fast, for early checks).

A checkpoint is a folder holding :data:`~il_ros.keys.CHECKPOINT_CONFIG_FILE` (this JSON),
:data:`~il_ros.keys.CHECKPOINT_MODEL_FILE` and optionally
:data:`~il_ros.keys.CHECKPOINT_EMA_FILE` (see :mod:`il_ros.models.checkpoint`, which writes
and loads it whole). Command-line glue and nodes read the JSON alone to check that a
checkpoint fits a robot, or to pick the cameras and rates of a sim, before paying for torch.
"""
from __future__ import annotations

import json
from pathlib import Path

from il_ros.images import Preprocess
from il_ros.keys import CHECKPOINT_CONFIG_FILE

CHECKPOINT_FORMAT = 'il_ros.policy/1'
"""The ``format`` field of every checkpoint this version writes and reads."""


def checkpoint_config_file(path) -> Path:
    """Return the JSON description of the checkpoint ``path`` (its folder or the file)."""
    path = Path(path)
    return path if path.name == CHECKPOINT_CONFIG_FILE else path / CHECKPOINT_CONFIG_FILE


def is_checkpoint(path) -> bool:
    """Tell whether ``path`` is a checkpoint folder (it holds the JSON description)."""
    return (Path(path) / CHECKPOINT_CONFIG_FILE).is_file()


def read_checkpoint_meta(path) -> dict:
    """Return the JSON description of the checkpoint ``path`` (no weights are read).

    Raises FileNotFoundError when there is no description, ValueError when it is corrupt,
    of another format than :data:`CHECKPOINT_FORMAT`, or lacks the ``config`` and ``spec``
    of a policy (their fields are checked when the policy is built).
    """
    file = checkpoint_config_file(path)
    if not file.is_file():
        raise FileNotFoundError(f'{path}: no checkpoint here (no {CHECKPOINT_CONFIG_FILE})')
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f'{file}: corrupt checkpoint description: {e}') from None
    if not isinstance(meta, dict) or meta.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{file}: unknown checkpoint format '
                         f'{meta.get("format") if isinstance(meta, dict) else None!r} '
                         f'(expected {CHECKPOINT_FORMAT!r})')
    if not isinstance(meta.get('config'), dict) or not isinstance(meta.get('spec'), dict):
        raise ValueError(f'{file}: invalid checkpoint description: needs a JSON object with '
                         f'"config" and "spec"')
    return meta


def checkpoint_preprocess(meta: dict) -> Preprocess | None:
    """The image preprocessing of a checkpoint's JSON description (``meta``).

    Its ``preprocess`` record (the dataset's, copied by the trainer), or for a checkpoint
    written before the record existed the default (centre crop + area resize) at its spec's
    ``image_size``; None for a policy without cameras. ValueError when the record is invalid
    or its size is not the spec's.
    """
    size = tuple(int(s) for s in meta['spec'].get('image_size') or ())
    if not meta['spec'].get('cameras') or len(size) != 2 or min(size) < 1:
        return None
    record = meta.get('preprocess')
    if record is None:
        return Preprocess(size=size)
    pre = Preprocess.from_dict(record)
    if pre.size != size:
        raise ValueError(f'preprocess size {list(pre.size)} != spec image_size {list(size)}')
    return pre

"""Episode metadata on disk: the one home of the status names and of how a status is read.

The recorder writes ``episode_NNNN.json`` beside each bag ``episode_NNNN/``; its ``status``
is one of the names below. Every reader (``il-ros record``, ``bag-info``, conversion, the
demo, the DAgger rounds) asks :func:`episode_status`, so a missing or unreadable file means
the same thing everywhere: :data:`STATUS_UNKNOWN`, which is never treated as complete.
"""
from __future__ import annotations

import json
from pathlib import Path

STATUS_RECORDING = 'recording'      # the recorder is (or was, if it died) writing it
STATUS_COMPLETE = 'complete'        # stopped cleanly, every configured topic recorded
STATUS_COMPLETE_WITH_LOSS = 'complete_with_loss'  # complete, but a topic lost more messages
#                                     than the recorder's max_loss_fraction (see its topics)
STATUS_INCOMPLETE = 'incomplete'    # stopped, but a topic was missing or a write failed
STATUS_DISCARDED = 'discarded'      # the operator discarded it; the bag folder is deleted
STATUS_UNKNOWN = 'unknown'          # no metadata, unreadable metadata, or no status in it

META_GLOB = 'episode_*.json'
RECORDED_STATUSES = (STATUS_COMPLETE, STATUS_COMPLETE_WITH_LOSS)
"""Statuses of an episode that was recorded to its end (usable; the loss is reported)."""


def read_episode_meta(path: Path) -> dict | None:
    """Return the metadata dict of an episode JSON (or of the bag folder beside it).

    None if absent or unreadable (for example while the recorder replaces it).
    """
    path = Path(path)
    if path.suffix != '.json':
        path = path.with_name(path.name + '.json')
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def recorded_namespace(meta: dict | Path | None) -> str | None:
    """The ROS namespace of the recorder that wrote an episode (``/robot1``; ``/`` none).

    From its metadata dict or its JSON/bag path (the recorder's fully qualified node name,
    ``node``); None when the episode has no such metadata (a bag from another recorder).
    """
    if meta is not None and not isinstance(meta, dict):
        meta = read_episode_meta(meta)
    node = (meta or {}).get('node')
    if not isinstance(node, str) or not node.startswith('/'):
        return None
    return node.rsplit('/', 1)[0] or '/'


def episode_status(meta: dict | Path | None) -> str:
    """The status of an episode, from its metadata dict or its JSON/bag path."""
    if meta is not None and not isinstance(meta, dict):
        meta = read_episode_meta(meta)
    if not meta:
        return STATUS_UNKNOWN
    status = meta.get('status')
    return status if isinstance(status, str) and status else STATUS_UNKNOWN


def episode_statuses(folder: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """Return ``{json file name: status}`` of every episode in ``folder``, in name order.

    Names in ``skip`` are left out.
    """
    return {meta.name: episode_status(meta) for meta in sorted(Path(folder).glob(META_GLOB))
            if meta.name not in skip}


def count_complete(folder: Path) -> int:
    """Number of episodes in ``folder`` recorded to their end (:data:`RECORDED_STATUSES`)."""
    return sum(s in RECORDED_STATUSES for s in episode_statuses(folder).values())


def lossy_topics(meta: dict | None) -> list[str]:
    """``topic: lost ~N of M (P%)`` for each topic an episode's metadata says lost messages.

    Read from the per-topic ``lost`` and ``loss_fraction`` the recorder writes; topics
    without a loss estimate (no expected rate) or with none lost are left out.
    """
    out = []
    for topic, t in sorted(((meta or {}).get('topics') or {}).items()):
        lost = t.get('lost') if isinstance(t, dict) else None
        if isinstance(lost, int) and lost > 0:
            frac = t.get('loss_fraction') or 0.0
            out.append(f'{topic}: lost ~{lost} of {lost + int(t.get("count") or 0)} '
                       f'({100 * frac:.1f}%)')
    return out

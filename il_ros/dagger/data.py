"""The data side of the rounds (no ROS, no training).

A round's bag folder, its episode log, its conversion into the aggregated dataset, and what
it added.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import time

from il_ros import keys
from il_ros.dagger.config import DaggerConfig, STALE_ACTION_HOLD
from il_ros.data.episodes import episode_status, META_GLOB, RECORDED_STATUSES
from il_ros.fsio import atomic_write_text

INTERRUPTED = 'interrupted'
"""Folder beside a round's ``bags/`` that episodes the recorder did not finish move to."""


def set_aside_incomplete(bags: Path) -> int:
    """Set aside the episodes of ``bags`` that are not complete; return the complete count.

    They move into ``interrupted/`` beside ``bags``, renamed with a time suffix, and are
    never converted.
    """
    bags = Path(bags)
    if not bags.is_dir():
        return 0
    n = 0
    for meta in sorted(bags.glob(META_GLOB)):
        if episode_status(meta) in RECORDED_STATUSES:   # complete (with loss, reported)
            n += 1
            continue
        aside = bags.parent / INTERRUPTED
        aside.mkdir(exist_ok=True)
        for p in (meta, meta.with_suffix('')):
            if p.exists():
                p.rename(aside / f'{p.name}.{int(time.time())}')
    return n


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file ([] when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace a JSON-lines file with ``records`` (atomically)."""
    atomic_write_text(path, ''.join(json.dumps(r) + '\n' for r in records))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record to a JSON-lines file."""
    with open(path, 'a') as fh:
        fh.write(json.dumps(record) + '\n')


def convert_config(cfg: DaggerConfig, action_topic: str):
    """How a round's bags are converted.

    The run's cameras, image size and rate; the action label from ``action_topic`` (per
    method: DaggerConfig.label_topic).
    """
    from il_ros.data.topic_map import ActionRole, ConvertConfig, TopicMap
    topics = TopicMap(cameras={cam: keys.camera_topic(cam) for cam in cfg.cameras},
                      action=ActionRole(topic=action_topic))
    # On a loaded machine a starved controller (or recorder: the label is timed by
    # receive time) leaves the label stream quiet for a few periods while the robot
    # keeps its last command. Those ticks have no label of their own: they are labelled
    # hold (weight 0 in training) where strict conversion would reject the whole
    # episode, and the intervention frames around them are kept. An observation stream
    # (header-stamped by the sim) still rejects above 10 periods.
    return ConvertConfig(topics=topics, rate_hz=cfg.rate_hz, image_size=cfg.image_size,
                         pre_intervention_frames=cfg.pre_intervention, stale_reject=10.0,
                         stale_action_hold=STALE_ACTION_HOLD)


def convert_bags(bags: Path, dataset: Path, cfg: DaggerConfig, action_topic: str,
                 say=print) -> list:
    """Convert the episodes of ``bags``, append them to ``dataset``; return the reports.

    Bags already in the dataset are skipped by content.
    """
    from il_ros.data.convert import convert, format_reports
    reports = convert([bags], dataset, convert_config(cfg, action_topic), progress=False)
    rejected = [r for r in reports if r.status == 'rejected']
    n = {s: sum(r.status == s for r in reports) for s in ('converted', 'skipped')}
    say(f'converted {bags}: {n["converted"]} new episodes, {n["skipped"]} already in the '
        f'dataset, {len(rejected)} rejected')
    held = [r for r in reports if r.status == 'converted' and r.stale_hold]
    if held:
        say(f'  {sum(r.stale_hold for r in held)} frames of {len(held)} episodes labelled '
            f'hold: their command was more than {STALE_ACTION_HOLD:g} periods old (a '
            f'starved controller or recorder)')
    if rejected:
        print(format_reports(rejected), flush=True)
    return reports


def added_data(dataset: Path, bags: Path | None, all_expert: bool) -> dict:
    """Episodes, frames and expert-labelled frames of ``dataset`` from the folder ``bags``.

    ``bags`` None: every episode (an initial dataset). ``all_expert``: every frame counts
    as expert-labelled (demos, DAgger's expert labels); else only the intervention frames
    do.
    """
    from il_ros.data.store import Dataset, decode_labels, LABEL_KEY
    ds = Dataset(dataset)
    root = None if bags is None else str(Path(bags).resolve()) + os.sep
    eps = [i for i in range(ds.num_episodes)
           if root is None or str(ds.meta(i).get('source_bag', '')).startswith(root)]
    counts: dict[str, int] = {}
    for i in eps:
        n = int(ds.episode_lengths[i])
        labels = (decode_labels(ds.read(LABEL_KEY, i, 0, n)) if LABEL_KEY in ds.shapes
                  else [keys.SOURCE_DEMO] * n)
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
    frames = sum(counts.values())
    labelled = frames if all_expert else counts.get(keys.SOURCE_INTERVENTION, 0)
    return {'episodes': len(eps), 'frames': frames, 'labels': counts,
            'expert_labelled': labelled, 'dataset_episodes': ds.num_episodes}


def dataset_frames(dataset: Path) -> int:
    """Frames in ``dataset``."""
    from il_ros.data.store import Dataset
    return int(Dataset(dataset).episode_lengths.sum())


def collect_summary(episodes: list[dict]) -> dict:
    """A round's deployment in numbers.

    Success, ticks by the supervisor, takeovers and failures of its episodes (the
    DaggerDriver.run_episode dicts).
    """
    n = len(episodes)
    ticks = sum(e['ticks'] for e in episodes)
    human = sum(e['human_ticks'] for e in episodes)
    return {'episodes': n, 'success_rate': sum(e['success'] for e in episodes) / max(1, n),
            'human_ticks': human, 'ticks': ticks,
            'takeovers': sum(e['takeovers'] for e in episodes),
            'intervention_rate': human / max(1, ticks),
            'failures': {f: sum(e['failure'] == f for e in episodes)
                         for f in sorted({e['failure'] for e in episodes if e['failure']})}}

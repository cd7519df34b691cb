"""`il-ros inspect DATASET`: what is in a dataset, as numbers and as pictures.

Writes ``contact_sheet.png`` (a grid of frames: one row per episode, frames evenly spaced in
time, one block per camera) and ``actions.png`` (each action dimension over time, one line
per episode, intervention frames shaded) next to the printed summary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from il_ros import keys
from il_ros.data.store import Dataset, decode_labels, is_image_key
from il_ros.keys import LABEL_NAMES


def summarize(ds: Dataset) -> dict:
    """Episodes, frames, success rate, label counts and per-key stats."""
    metas = [ds.meta(i) for i in range(ds.num_episodes)]
    known = [m.get('success') for m in metas if m.get('success') is not None]
    labels: dict[str, int] = {name: 0 for name in LABEL_NAMES}
    for i in range(ds.num_episodes):
        for name in decode_labels(ds.read('label', i, 0, int(ds.episode_lengths[i]))):
            labels[name] += 1
    lengths = np.asarray(ds.episode_lengths)
    return {
        'path': str(ds.path) if hasattr(ds, 'path') else None,
        'episodes': int(ds.num_episodes),
        'frames': int(lengths.sum()),
        'frames_per_episode': ({'min': int(lengths.min()), 'mean': float(lengths.mean()),
                                'max': int(lengths.max())} if lengths.size else
                               {'min': 0, 'mean': 0.0, 'max': 0}),
        'success_rate': float(np.mean(known)) if known else None,
        'success_known': len(known),
        'tasks': sorted({str(m.get('task')) for m in metas}),
        'labels': labels,
        'keys': {k: {'shape': list(ds.shapes[k]), 'dtype': str(ds.dtypes[k])}
                 for k in ds.keys},
        'stats': {k: {s: np.round(np.asarray(v, float), 4).tolist() for s, v in st.items()}
                  for k, st in ds.stats.items()},
    }


def format_summary(s: dict) -> str:
    """The summary as text."""
    sr = 'unknown' if s['success_rate'] is None else \
        f"{s['success_rate']:.0%} of {s['success_known']}"
    fpe = s['frames_per_episode']
    lines = [f"{s['episodes']} episodes, {s['frames']} frames "
             f"({fpe['min']}-{fpe['max']} per episode), success {sr}, tasks {s['tasks']}",
             'labels: ' + ', '.join(f'{k} {v}' for k, v in s['labels'].items() if v)]
    for k, info in s['keys'].items():
        line = f"  {k:14s} {info['dtype']:8s} {tuple(info['shape'])}"
        st = s['stats'].get(k)
        if st and not is_image_key(k):
            line += f"  min {st['min']}  max {st['max']}"
        lines.append(line)
    return '\n'.join(lines)


def contact_sheet(ds: Dataset, path: Path, episodes: int = 8, frames: int = 8) -> Path:
    """A grid PNG of frames: rows are episodes, columns evenly spaced times."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cams = [k for k in ds.keys if is_image_key(k)]
    eps = list(range(min(episodes, ds.num_episodes)))
    fig, axes = plt.subplots(len(eps), frames * len(cams), squeeze=False,
                             figsize=(1.2 * frames * len(cams), 1.3 * len(eps)))
    for r, e in enumerate(eps):
        n = int(ds.episode_lengths[e])
        idx = np.linspace(0, n - 1, frames).round().astype(int)
        for c, cam in enumerate(cams):
            imgs = ds.read(cam, e, 0, n)
            for j, t in enumerate(idx):
                ax = axes[r, c * frames + j]
                ax.imshow(imgs[t])
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f'{cam.split("/", 1)[1]} {j + 1}/{frames}', fontsize=6)
                if j == 0 and c == 0:
                    ok = ds.meta(e).get('success')
                    ax.set_ylabel(f'ep {e}' + ('' if ok is None else (' ok' if ok else ' FAIL')),
                                  fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def action_plots(ds: Dataset, path: Path, episodes: int = 20) -> Path:
    """One subplot per action dimension, one line per episode, interventions shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dim = ds.shapes[keys.ACTION][-1]
    fig, axes = plt.subplots(dim, 1, sharex=True, figsize=(8, 1.4 * dim), squeeze=False)
    rate = ds.meta(0).get('rate_hz') or 1.0
    for e in range(min(episodes, ds.num_episodes)):
        n = int(ds.episode_lengths[e])
        act = ds.read(keys.ACTION, e, 0, n)
        lab = np.array(decode_labels(ds.read('label', e, 0, n)))
        t = np.arange(n) / rate
        for d in range(dim):
            axes[d, 0].plot(t, act[:, d], lw=0.8)
            takeover = lab == keys.SOURCE_INTERVENTION
            if takeover.any():
                axes[d, 0].fill_between(t, act[:, d].min(), act[:, d].max(), where=takeover,
                                        color='orange', alpha=0.15, lw=0)
    names = ds.meta(0).get('action_names') or [f'a{d}' for d in range(dim)]
    for d in range(dim):
        axes[d, 0].set_ylabel(names[d] if d < len(names) else f'a{d}', fontsize=8)
    axes[-1, 0].set_xlabel('time in episode [s]')
    fig.suptitle(f'actions of {min(episodes, ds.num_episodes)} episodes '
                 '(orange: human intervention)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def inspect(path: str | Path, out: str | Path | None = None) -> tuple[dict, list[Path]]:
    """Summary dict and the PNGs written (into ``out``, default ``<dataset>/inspect``)."""
    ds = Dataset(path)
    summary = summarize(ds)
    summary['path'] = str(path)
    out = Path(out) if out else Path(path) / 'inspect'
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    if ds.num_episodes:
        pngs = [contact_sheet(ds, out / 'contact_sheet.png'),
                action_plots(ds, out / 'actions.png')]
    summary['pictures'] = [str(p) for p in pngs]
    return summary, pngs

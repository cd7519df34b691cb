"""The run's log: ``log.csv`` (one row per log interval or evaluation) and ``curves.png``.

Columns (:data:`COLUMNS`): ``step``, ``time_s`` (training seconds so far), ``wall_s`` (wall
seconds since the run started, all sessions), ``lr``, ``train_loss`` (mean over the rows'
steps), ``grad_norm``, ``samples_per_s``, and at evaluations ``val_loss``, ``success_rate``
and ``best`` (1 when this evaluation became the best checkpoint). Empty cells mean "not
measured at this row". A resumed run first drops the rows written after its checkpoint, so
the file never holds a step twice.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = ('step', 'time_s', 'wall_s', 'lr', 'train_loss', 'grad_norm', 'samples_per_s',
           'val_loss', 'success_rate', 'best')


def _fmt(v) -> str:
    if v is None:
        return ''
    if isinstance(v, float):
        return f'{v:.6g}' if math.isfinite(v) else str(v)
    return str(v)


class Logbook:
    """Append rows to ``log.csv`` and draw ``curves.png`` from it."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        """Open (create) the log; with ``resume_step``, drop rows after that step."""
        self.path = Path(run_dir) / 'log.csv'
        self.png = Path(run_dir) / 'curves.png'
        rows = self.read() if self.path.is_file() and resume_step is not None else []
        rows = [r for r in rows if int(float(r['step'])) <= (resume_step or 0)]
        with open(self.path, 'w', newline='') as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, '') for k in COLUMNS})

    def write(self, **row) -> None:
        """Append one row (unknown columns raise KeyError)."""
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise KeyError(f'log columns {unknown} unknown; columns are {COLUMNS}')
        with open(self.path, 'a', newline='') as f:
            csv.DictWriter(f, COLUMNS).writerow({k: _fmt(row.get(k)) for k in COLUMNS})

    def read(self) -> list[dict[str, str]]:
        """All rows as dicts of strings."""
        with open(self.path, newline='') as f:
            return list(csv.DictReader(f))

    def column(self, name: str) -> tuple[list[int], list[float]]:
        """Return (steps, values) of the rows where ``name`` is filled in."""
        steps, vals = [], []
        for r in self.read():
            if r.get(name):
                steps.append(int(float(r['step'])))
                vals.append(float(r[name]))
        return steps, vals

    def plot(self, title: str = '') -> Path:
        """Draw loss, validation loss, success rate and LR against steps into curves.png."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
        ax = axes[0]
        for name, style in (('train_loss', '-'), ('val_loss', 'o-')):
            s, v = self.column(name)
            if s:
                ax.plot(s, v, style, label=name.replace('_', ' '), markersize=3)
        ax.set_ylabel('loss')
        ax.legend(loc='upper right')
        ax.grid(alpha=0.3)
        s, v = self.column('success_rate')
        axes[1].plot(s, v, 'o-', color='tab:green', markersize=4)
        axes[1].set_ylim(-0.05, 1.05)
        axes[1].set_ylabel('rollout success')
        axes[1].grid(alpha=0.3)
        bs, _ = self.column('best')
        best = [(st, val) for st, val in zip(s, v) if st in set(bs)]
        if best:
            axes[1].plot(*zip(*best), '*', color='tab:red', markersize=10, label='best')
            axes[1].legend(loc='lower right')
        s, v = self.column('lr')
        axes[2].plot(s, v, color='tab:gray')
        axes[2].set_ylabel('learning rate')
        axes[2].set_xlabel('step')
        axes[2].grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        tmp = self.png.with_name('.curves.tmp.png')
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        tmp.replace(self.png)
        return self.png

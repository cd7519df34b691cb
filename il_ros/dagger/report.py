"""The per-round report of a DAgger run.

OUT/report.json, OUT/report.md (a table) and OUT/report.png (a plot), rewritten from
``state.json`` after every round. The plot is drawn by matplotlib (Agg backend) and written
atomically; when it cannot be drawn or written, a warning is logged and the JSON and the
markdown are written all the same.
"""
from __future__ import annotations

import logging
from pathlib import Path

from il_ros import keys
from il_ros.dagger.config import DaggerConfig
from il_ros.fsio import atomic_write, atomic_write_json, atomic_write_text

PLOT_NAME = 'report.png'
"""The plot's file name in the run folder (linked from report.md)."""

_LOG = logging.getLogger('il_ros.dagger.report')


def report_rows(cfg: DaggerConfig, state: dict) -> list[dict]:
    """One row per round reached, in order.

    Each row: data added (episodes, frames, expert-labelled steps), expert-labelled steps
    so far, evaluation success, the collection's success, intervention rate and takeovers
    per episode, training steps. A value not measured (yet) is None.
    """
    rows, labelled = [], 0
    for k in range(cfg.rounds + 1):
        r = state['rounds'].get(str(k))
        if not r:
            break
        added = r.get('data') or {}
        labelled += added.get('expert_labelled', 0)
        col = r.get('collect') or {}
        rows.append({'round': k, 'done': r['done'],
                     'episodes_added': added.get('episodes'),
                     'frames_added': added.get('frames'),
                     'expert_labelled_added': added.get('expert_labelled'),
                     'expert_labelled_steps': labelled,
                     'dataset_episodes': added.get('dataset_episodes'),
                     'success_rate': (r.get('eval') or {}).get('success_rate'),
                     'collect_success_rate': col.get('success_rate'),
                     'intervention_rate': col.get('intervention_rate'),
                     'takeovers_per_episode': (col['takeovers'] / col['episodes']
                                               if col.get('episodes') else None),
                     'train_steps': (r.get('train') or {}).get('step'),
                     'checkpoint': r.get('checkpoint')})
    return rows


def format_markdown(cfg: DaggerConfig, rows: list[dict], plot: str | None = None) -> str:
    """The report as a markdown table, one line per round, then the ``plot`` image if any."""
    def pct(v):
        return '-' if v is None else f'{v:.0%}'

    def val(v):
        return '-' if v is None else v
    lines = [f'# il-ros dagger: {cfg.task}, {cfg.method}, weighting {cfg.weighting}', '',
             f'{cfg.episodes_per_round} episodes per round; success: in-process, '
             f'{cfg.eval_episodes} episodes from seed {keys.EVAL_SEED}, no supervisor.', '',
             '| round | episodes added | labelled steps added | expert-labelled steps (total) '
             '| success | collection success | intervention rate | takeovers/episode |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        tpe = r['takeovers_per_episode']
        lines.append(f"| {r['round']} | {val(r['episodes_added'])} | "
                     f"{val(r['expert_labelled_added'])} | {r['expert_labelled_steps']} | "
                     f"{pct(r['success_rate'])} | {pct(r['collect_success_rate'])} | "
                     f"{pct(r['intervention_rate'])} | "
                     f"{'-' if tpe is None else f'{tpe:.1f}'} |")
    if plot:
        lines += ['', f'![success, intervention rate and takeovers per round]({plot})']
    return '\n'.join(lines) + '\n'


def plot_series(rows: list[dict]) -> dict[str, list[tuple]]:
    """The points of the plot, per series: rounds with the value None are left out.

    ``success`` and ``collect_success``: (expert-labelled steps so far, rate, round);
    ``intervention_rate`` and ``takeovers_per_episode``: (round, value).
    """
    def by_labels(key):
        return [(r['expert_labelled_steps'], r[key], r['round']) for r in rows
                if r[key] is not None]

    def by_round(key):
        return [(r['round'], r[key]) for r in rows if r[key] is not None]
    return {'success': by_labels('success_rate'),
            'collect_success': by_labels('collect_success_rate'),
            'intervention_rate': by_round('intervention_rate'),
            'takeovers_per_episode': by_round('takeovers_per_episode')}


def plot_report(path: Path, cfg: DaggerConfig, rows: list[dict]) -> Path:
    """Draw the rounds into ``path`` (PNG, written atomically).

    Left: evaluation success and collection success against the expert-labelled steps so
    far, one point per round labelled with its number. Right: intervention rate and
    takeovers per episode of each round's collection.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    s = plot_series(rows)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for key, label, style, color in (
                ('success', 'success (evaluation)', 'o-', 'tab:green'),
                ('collect_success', 'collection success (supervised)', 's--', 'tab:blue')):
            if s[key]:
                x, y, k = zip(*s[key])
                ax.plot(x, [100 * v for v in y], style, color=color, label=label)
                for xi, yi, ki in zip(x, y, k):
                    ax.annotate(f'r{ki}', (xi, 100 * yi), textcoords='offset points',
                                xytext=(4, 5), fontsize=8, color=color)
        ax.set_ylim(-5, 110)
        ax.set_xlabel('expert-labelled steps (total)')
        ax.set_ylabel('success (%)')
        ax.set_title('success against labels')
        ax.grid(alpha=0.3)
        if s['success'] or s['collect_success']:
            ax.legend(loc='lower right', fontsize=8)
        if s['intervention_rate']:
            x, y = zip(*s['intervention_rate'])
            ax2.plot(x, [100 * v for v in y], 'o-', color='tab:red', label='intervention rate')
        ax2.set_ylabel('intervention rate (% of ticks)', color='tab:red')
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel('round')
        ax2.set_xticks([r['round'] for r in rows])
        ax2.set_xlim(-0.5, len(rows) - 0.5)
        ax2.set_title('interventions per round')
        ax2.grid(alpha=0.3)
        ax3 = ax2.twinx()
        if s['takeovers_per_episode']:
            x, y = zip(*s['takeovers_per_episode'])
            ax3.plot(x, y, 's--', color='tab:purple', label='takeovers/episode')
        ax3.set_ylabel('takeovers per episode', color='tab:purple')
        ax3.set_ylim(bottom=0)
        if not s['intervention_rate']:
            ax2.text(0.5, 0.5, 'no supervised collection', transform=ax2.transAxes,
                     ha='center', va='center', color='gray')
        fig.suptitle(f'il-ros dagger: {cfg.task}, {cfg.method}, weighting {cfg.weighting}')
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90), sync=False)
    finally:
        plt.close(fig)
    return path


def write_report(out: Path, cfg: DaggerConfig, state: dict) -> dict:
    """Write ``out/report.json``, ``out/report.png`` and ``out/report.md``; return the report.

    A plot that fails is logged as a warning; report.md then links the image only if an
    earlier one is there.
    """
    out = Path(out)
    rows = report_rows(cfg, state)
    report = {'config': cfg.to_dict(), 'rounds': rows}
    atomic_write_json(out / 'report.json', report, sync=False)
    png = out / PLOT_NAME
    try:
        plot_report(png, cfg, rows)
    except Exception as e:      # noqa: BLE001 - the plot must not cost the report
        _LOG.warning('dagger report: could not write the plot %s (%s: %s); report.json and '
                     'report.md are written', png, type(e).__name__, e)
    atomic_write_text(out / 'report.md',
                      format_markdown(cfg, rows, PLOT_NAME if png.is_file() else None),
                      sync=False)
    return report

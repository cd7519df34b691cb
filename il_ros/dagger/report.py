"""The per-round report of a DAgger run.

OUT/report.json and OUT/report.md, rewritten from ``state.json`` after every round.
"""
from __future__ import annotations

from pathlib import Path

from il_ros import keys
from il_ros.dagger.config import DaggerConfig
from il_ros.fsio import atomic_write_json, atomic_write_text


def report_rows(cfg: DaggerConfig, state: dict) -> list[dict]:
    """One row per round reached, in order.

    Each row: data added, expert-labelled steps so far, evaluation success, the
    collection's success and interventions, training steps.
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
                     'expert_labelled_steps': labelled,
                     'dataset_episodes': added.get('dataset_episodes'),
                     'success_rate': (r.get('eval') or {}).get('success_rate'),
                     'collect_success_rate': col.get('success_rate'),
                     'intervention_rate': col.get('intervention_rate'),
                     'takeovers_per_episode': (col['takeovers'] / col['episodes']
                                               if col else None),
                     'train_steps': (r.get('train') or {}).get('step'),
                     'checkpoint': r.get('checkpoint')})
    return rows


def format_markdown(cfg: DaggerConfig, rows: list[dict]) -> str:
    """The report as a markdown table, one line per round."""
    def pct(v):
        return '-' if v is None else f'{v:.0%}'
    lines = [f'# il-ros dagger: {cfg.task}, {cfg.method}, weighting {cfg.weighting}', '',
             f'{cfg.episodes_per_round} episodes per round; success: in-process, '
             f'{cfg.eval_episodes} episodes from seed {keys.EVAL_SEED}, no supervisor.', '',
             '| round | episodes added | expert-labelled steps (total) | success | '
             'collection success | intervention rate | takeovers/episode |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        tpe = r['takeovers_per_episode']
        added = '-' if r['episodes_added'] is None else r['episodes_added']
        lines.append(f"| {r['round']} | {added} | {r['expert_labelled_steps']} | "
                     f"{pct(r['success_rate'])} | {pct(r['collect_success_rate'])} | "
                     f"{pct(r['intervention_rate'])} | "
                     f"{'-' if tpe is None else f'{tpe:.1f}'} |")
    return '\n'.join(lines) + '\n'


def write_report(out: Path, cfg: DaggerConfig, state: dict) -> dict:
    """Write ``out/report.json`` and ``out/report.md``; return the report dict."""
    rows = report_rows(cfg, state)
    report = {'config': cfg.to_dict(), 'rounds': rows}
    atomic_write_json(Path(out) / 'report.json', report, sync=False)
    atomic_write_text(Path(out) / 'report.md', format_markdown(cfg, rows), sync=False)
    return report

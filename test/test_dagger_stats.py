"""The DAgger experiment's statistics (bench/dagger_experiment.py).

95% intervals over seeds, the gain over BC at equal expert labels paired by seed, and the
table that reports them.
"""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
import dagger_experiment as dx  # noqa: E402  (bench/ is not a package)


def run(method, seed, points, ir=None):
    rounds = [{'round': k, 'expert_labelled': lab, 'success_rate': s, 'mean_progress': None}
              for k, (lab, s) in enumerate(points)]
    for k, r in enumerate(rounds[1:], 1):
        if ir is not None:
            r['collect'] = {'intervention_rate': ir[k - 1]}
    return {'method': method, 'seed': seed, 'rounds': rounds}


def test_ci95_is_students_t_over_seeds():
    assert dx.ci95([0.5, 0.7]) == pytest.approx(12.706 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2))
    v = [0.1, 0.3, 0.2, 0.4, 0.6]
    assert dx.ci95(v) == pytest.approx(2.776 * np.std(v, ddof=1) / np.sqrt(5))
    assert dx.ci95([0.4] * 5) == 0.0
    assert np.isnan(dx.ci95([0.4])) and np.isnan(dx.ci95([0.4, float('nan')]))
    assert dx.ci95(np.full(40, 0.5)) == 0.0          # beyond the table: 1.96


def test_gain_is_paired_by_seed_at_equal_labels():
    results = [run('bc', 0, [(1000, 0.2), (2000, 0.6)]),
               run('bc', 1, [(1000, 0.4), (2000, 0.4)]),
               run('hg-iwr', 0, [(1000, 0.2), (1250, 0.5)], ir=[0.1]),
               run('hg-iwr', 1, [(1000, 0.4), (1500, 0.6)], ir=[0.2]),
               run('hg-iwr', 7, [(1000, 0.0), (1500, 0.9)], ir=[0.2])]   # no BC for seed 7
    g = dx.gain_over(results, 'hg-iwr')
    assert [e['seeds'] for e in g] == [2, 2]
    assert g[0]['gain'] == pytest.approx(0.0)
    # seed 0: BC at 1250 labels is 0.2 + 0.25 * 0.4 = 0.3, gain 0.2; seed 1: 0.6 - 0.4 = 0.2
    assert g[1]['gain'] == pytest.approx(0.2) and g[1]['ci95'] == pytest.approx(0.0)
    assert g[1]['expert_labelled'] == pytest.approx(1375)
    assert dx.gain_over(results, 'dagger') == []
    md = dx.table(results).splitlines()
    assert 'gain over BC at equal labels' in md[0]
    row = next(line for line in md if line.startswith('| hg-iwr | 3 | 1 |'))
    assert '| +20 ± 0 |' in row and row.endswith('17% |')     # interventions: 10, 20, 20%
    assert next(line for line in md if line.startswith('| bc | 2 | 1 |')).count('| - |') == 2


def test_gain_over_the_control_arm_is_paired_by_seed_and_round():
    results = [run('control', 0, [(1000, 0.2), (1000, 0.5)]),
               run('control', 1, [(1000, 0.4), (1000, 0.6)]),
               run('hg-uniform', 0, [(1000, 0.2), (1200, 0.3)], ir=[0.1]),
               run('hg-uniform', 1, [(1000, 0.4), (1300, 0.5)], ir=[0.1]),
               run('bc', 0, [(1000, 0.2), (2000, 0.6)])]
    g = dx.gain_over_control(results, 'hg-uniform')
    assert [e['seeds'] for e in g] == [2, 2] and g[0]['gain'] == pytest.approx(0.0)
    assert g[1]['gain'] == pytest.approx(-0.15)
    assert g[1]['ci95'] == pytest.approx(12.706 * np.std([-0.2, -0.1], ddof=1) / np.sqrt(2))
    row = next(line for line in dx.table(results).splitlines()
               if line.startswith('| hg-uniform | 2 | 1 |'))
    assert '| -15 ± ' in row
    assert dx.gain_over_control(results, 'dagger') == []
    assert 'control' in dx.METHODS and dx.METHODS[0] == 'bc'


def test_rounds_left_unevaluated_are_left_out_of_the_means_and_gains():
    """``--eval-rounds last``: round 1 has no success, its interventions still count."""
    results = [run('control', 0, [(1000, 0.2), (1000, None), (1000, 0.5)]),
               run('control', 1, [(1000, 0.4), (1000, 0.5), (1000, 0.6)]),
               run('hg-uniform', 0, [(1000, 0.2), (1100, None), (1200, 0.7)], ir=[0.1, 0.05]),
               run('hg-uniform', 1, [(1000, 0.4), (1100, 0.6), (1300, 0.8)], ir=[0.2, 0.1]),
               run('bc', 0, [(1000, 0.2), (2000, 0.6)]),
               run('bc', 1, [(1000, 0.4), (2000, 0.4)])]
    g = {e['round']: e for e in dx.gain_over_control(results, 'hg-uniform')}
    assert g[1]['seeds'] == 1 and g[1]['gain'] == pytest.approx(0.1)
    assert g[2]['seeds'] == 2 and g[2]['gain'] == pytest.approx(0.2)
    b = {e['round']: e for e in dx.gain_over(results, 'hg-uniform')}
    assert b[1]['seeds'] == 1 and b[2]['seeds'] == 2
    md = dx.table(results).splitlines()
    row = next(line for line in md if line.startswith('| hg-uniform | 1 | 1 |'))
    assert '| 60% |' in row and row.endswith('15% |')   # both seeds' interventions
    assert any(line.startswith('| hg-uniform | 2 | 2 | 1250 | 75 ± ') for line in md)

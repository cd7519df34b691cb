"""The test harness itself: the realtime group that ``make test`` keeps on one worker.

The timing tests judge rates and gaps in wall time; they only hold if training and builds
(CPU_BOUND) do not run beside them. xdist's own ``xdist_group`` grouping stopped working with
pytest 9.2 without a word, so conftest groups by module name; these tests catch both a
module renamed out of the group and a scheduler that no longer groups.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import _realtime_scope, GROUPED, REPO


def test_every_grouped_module_exists():
    missing = sorted(n for n in GROUPED if not (REPO / 'test' / n).is_file())
    assert not missing, f'conftest groups modules that are not in test/: {missing}'


def test_scope_is_the_module_name():
    assert _realtime_scope('test/test_recorder.py::test_rate[50]') == 'realtime'
    assert _realtime_scope('test/test_training.py::test_tiny_run') == 'realtime'
    assert _realtime_scope('test/test_store.py::test_one_writer_at_a_time') is None
    assert _realtime_scope('test/test_store.py::test_x[test_recorder.py]') is None


def test_make_tests_scheduling_keeps_the_group_on_one_worker(tmp_path):
    """Two workers, a CPU_BOUND module of many tests and a light one, as ``make test`` runs.

    The quick tests of test_models.py (11) and all of test_store.py (19): the scheduling,
    not the training, is what this checks.
    """
    quick = 'test_store or registry or unet or prediction_types or bf16'
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTEST_ADDOPTS', 'PYTEST_XDIST_WORKER')}
    res = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-n', '2', '--dist',
         'loadgroup', '-v', '--basetemp', str(tmp_path / 'bt'), 'test/test_models.py',
         'test/test_store.py', '-k', quick],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    ran = re.findall(r'^\[(gw\d+)\] .*?PASSED (test/\S+?)::', res.stdout, re.M)
    grouped = {gw for gw, path in ran if path.endswith('test_models.py')}
    n_models = sum(path.endswith('test_models.py') for _, path in ran)
    assert n_models > 8 and len(ran) > 20 and len(grouped) == 1, \
        f'test_models.py ran on {sorted(grouped)}'

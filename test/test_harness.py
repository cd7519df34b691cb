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


def test_make_tests_scheduling_keeps_the_group_on_one_worker_and_survives_a_crash(tmp_path):
    """Two workers, a CPU_BOUND module of many tests and two light ones, as ``make test`` runs.

    The quick tests of test_models.py (11), all of test_store.py (19) and of
    test_dagger_stats.py (4): the scheduling, not the training, is what this checks. The
    worker that runs test_dagger_stats.py's last test dies in its teardown (as a worker once
    did in rclpy's destroy_node): that test fails and is not run again, every other test
    runs once and passes, and the run ends (pytest-xdist 3.8.0's own scheduler hung).
    """
    crash_at = ('test/test_dagger_stats.py::'
                'test_rounds_left_unevaluated_are_left_out_of_the_means_and_gains')
    (tmp_path / 'crash_at.py').write_text(
        'import os\n\n\ndef pytest_runtest_teardown(item):\n'
        '    if item.nodeid == os.environ.get("IL_ROS_CRASH_AT"):\n'
        '        os._exit(3)\n')
    quick = 'test_store or registry or unet or prediction_types or bf16 or test_dagger_stats'
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTEST_ADDOPTS', 'PYTEST_XDIST_WORKER')}
    env.update(IL_ROS_CRASH_AT=crash_at,
               PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), env.get('PYTHONPATH')])))
    res = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-p', 'crash_at', '-n', '2',
         '--dist', 'loadgroup', '-v', '--basetemp', str(tmp_path / 'bt'), 'test/test_models.py',
         'test/test_store.py', 'test/test_dagger_stats.py', '-k', quick],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    out = res.stdout[-4000:] + res.stderr[-2000:]
    ran = re.findall(r'^\[(gw\d+)\] .*?(PASSED|FAILED) (test/\S+)', res.stdout, re.M)
    passed = [test for _, outcome, test in ran if outcome == 'PASSED']
    grouped = {gw for gw, _, test in ran if 'test_models.py' in test}
    n_models = sum('test_models.py' in test for test in passed)
    assert res.returncode == 1 and 'replacing crashed worker' in res.stdout, out
    assert [test for _, outcome, test in ran if outcome == 'FAILED'] == [crash_at], out
    # its call passed (reported before the teardown); it ran once, as every other test
    assert len(passed) == len(set(passed)) > 30 and crash_at in passed, out
    assert n_models > 8 and len(grouped) == 1, f'test_models.py ran on {sorted(grouped)}'

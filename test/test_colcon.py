"""``colcon build`` and ``colcon test`` in a scratch workspace, as a ROS user runs them.

The workspace holds ``src/il_ros``, a link to this checkout. The build must install the
package where ``ros2 run`` / ``ros2 launch`` look (lib/il_ros/<executable>, share/il_ros, the
ament index marker) and a Python package that imports from the install folder. ``colcon
test`` must run the suite with pytest: it once ran 0 tests and reported success, because
colcon picks pytest only when setup.py declares it as a test dependency. It runs the fast
COLCON_SUBSET (the whole suite a second time costs minutes), and the check is that pytest
under colcon *collected* every test of the suite and ran the subset without a failure.

Needs colcon (``pip install -r requirements-ci.txt``; .ci/run installs it); skipped without.
With ros2cli installed, ``ros2 pkg executables il_ros`` must list every node of the build.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

# The tests colcon runs: packaging and structure checks, seconds in all.
COLCON_SUBSET = ('test_package_install or test_package_deps or test_graph_config '
                 'or test_core_is_ros_free')
INNER = 'IL_ROS_UNDER_COLCON'       # set for the nested run, so this file skips there
COLCON = shutil.which('colcon', path=str(Path(sys.executable).parent)) or shutil.which('colcon')

pytestmark = [
    pytest.mark.skipif(COLCON is None or importlib.util.find_spec('colcon_core') is None,
                       reason='colcon is not installed here (pip install -r '
                              'requirements-ci.txt; .ci/run does)'),
    pytest.mark.skipif(bool(os.environ.get(INNER)), reason='already running under colcon'),
]


def _run(args, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    res = subprocess.run(args, cwd=str(cwd), env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, (f'{" ".join(map(str, args))}: rc {res.returncode}\n'
                                 f'{res.stdout[-3000:]}\n{res.stderr[-3000:]}')
    return res


def _suite_size(env) -> int:
    """How many tests plain pytest collects from this checkout."""
    res = _run([sys.executable, '-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider',
                'test'], REPO, env)
    m = re.search(r'^(\d+) tests? collected', res.stdout, re.M)
    assert m, res.stdout[-2000:]
    return int(m.group(1))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A colcon workspace with src/il_ros -> this checkout, built; yields (ws, env)."""
    ws = tmp_path_factory.mktemp('ws')
    (ws / 'src').mkdir()
    (ws / 'src' / 'il_ros').symlink_to(REPO, target_is_directory=True)
    # PYTEST_ADDOPTS of the outer run (say -v) would change what the inner runs print.
    env = {**{k: v for k, v in os.environ.items() if k != 'PYTEST_ADDOPTS'}, INNER: '1',
           'COLCON_HOME': str(ws / '.colcon_home'),
           'PATH': os.pathsep.join([str(Path(sys.executable).parent), os.environ['PATH']])}
    _run([COLCON, 'build', '--event-handlers', 'console_direct-'], ws, env)
    return ws, env


def test_colcon_build_installs_where_ros2_looks(workspace):
    ws, env = workspace
    prefix = ws / 'install' / 'il_ros'
    assert (prefix / 'share/ament_index/resource_index/packages/il_ros').is_file()
    share = prefix / 'share' / 'il_ros'
    assert (share / 'package.xml').is_file()
    for folder, pattern in (('launch', '*.launch.py'), ('config/robots', '*.yaml'),
                            ('sim', '*.xml')):
        for f in (REPO / folder).glob(pattern):
            assert (share / folder / f.name).is_file(), f'{folder}/{f.name} not installed'
    from il_ros.config import load_graph
    for exe in {s.executable for s in load_graph().nodes.values()} | {'il-ros'}:
        assert os.access(prefix / 'lib' / 'il_ros' / exe, os.X_OK), f'lib/il_ros/{exe}'
    # The workspace's setup script puts the installed copy first on the Python path.
    res = _run(['bash', '-c', '. install/setup.sh && python -c '
                '"import il_ros; print(il_ros.__file__)" && install/il_ros/lib/il_ros/il-ros '
                '--help'], ws, env)
    assert res.stdout.splitlines()[0].startswith(str(prefix)), res.stdout[:500]
    assert 'usage' in res.stdout.lower()


def test_colcon_test_collects_the_suite_and_runs_the_subset(workspace):
    ws, env = workspace
    _run([COLCON, 'test', '--event-handlers', 'console_direct-', '--return-code-on-test-failure',
          '--pytest-args', '-k', COLCON_SUBSET], ws, env)
    log = (ws / 'log' / 'latest_test' / 'il_ros' / 'stdout.log').read_text()
    m = re.search(r'collected (\d+) items / (\d+) deselected / (\d+) selected', log)
    assert m, f'pytest did not run under colcon (colcon falls back to unittest):\n{log[-2000:]}'
    collected, selected = int(m.group(1)), int(m.group(3))
    assert collected == _suite_size(env), 'colcon test collected a different suite'
    summary = _run([COLCON, 'test-result', '--all'], ws, env).stdout
    m = re.search(r'Summary: (\d+) tests, (\d+) errors, (\d+) failures, (\d+) skipped', summary)
    assert m, summary
    tests, errors, failures, _ = map(int, m.groups())
    assert tests == selected > 10 and errors == failures == 0, summary


@pytest.mark.skipif(importlib.util.find_spec('ros2cli') is None,
                    reason='no ros2cli here (a ROS install, or ../shared/ros2-tools)')
def test_ros2_finds_the_built_package(workspace):
    ws, env = workspace
    ros2 = f'{sys.executable} -c "import sys; from ros2cli.cli import main; sys.exit(main())"'
    res = _run(['bash', '-c', f'. install/setup.sh && {ros2} pkg executables il_ros && '
                f'{ros2} pkg prefix il_ros'], ws, env, timeout=120)
    from il_ros.config import load_graph
    listed = {tuple(line.split()) for line in res.stdout.splitlines()}
    for exe in {s.executable for s in load_graph().nodes.values()} | {'il-ros'}:
        assert ('il_ros', exe) in listed, res.stdout
    assert res.stdout.strip().splitlines()[-1] == str(ws / 'install' / 'il_ros')

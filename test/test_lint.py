"""Lint: ruff (pinned in requirements.txt) with the rules of ruff.toml, over the code.

Lines of at most 99 columns, pyflakes, and PEP 257 docstrings on the public API; ruff.toml
says which rules and why. ruff is a test dependency that ``make test`` installs, so a missing
ruff fails this test instead of skipping it.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ('il_ros', 'bench', 'test', 'launch')


def ruff(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m ruff`` of this interpreter's environment in the repository root."""
    return subprocess.run([sys.executable, '-m', 'ruff', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_ruff_is_installed():
    out = ruff('--version')
    assert out.returncode == 0, (f'ruff is not installed in {sys.prefix} (make test installs '
                                 f'requirements.txt): {out.stderr.strip()}')


def test_code_passes_ruff():
    out = ruff('check', '--no-cache', '--output-format', 'concise', *PATHS)
    assert out.returncode == 0, (f'ruff found problems (fix them; `ruff check --fix` fixes '
                                 f'some; rules and reasons in ruff.toml):\n{out.stdout}'
                                 f'{out.stderr}')


def test_ruff_config_is_the_one_used():
    """The check can fail: with this config ruff flags a long line and a missing docstring."""
    source = '"""A probe."""\n\n\ndef f():\n    x = 1  ' + '#' * 99 + '\n'
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache',
                          '--output-format', 'concise', '--stdin-filename',
                          'il_ros/probe.py', '-'], cwd=ROOT, input=source,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert all(rule in out.stdout for rule in ('E501', 'D103', 'F841')), out.stdout

"""The docs stay a manual: short README, no development-period labels, no dead links or paths.

Checks README.md, CHANGELOG.md and docs/**/*.md (and config/**/*.yaml for the wording
rule). Every failure lists each offender as ``file:line``.
"""
from __future__ import annotations

from pathlib import Path
import re

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 220

# Text that labels a result by when it was developed instead of saying what it is.
HISTORY_WORDING = re.compile(r'session \d+|the earlier row|now the default', re.IGNORECASE)

# A markdown link or image: [text](target) / ![alt](target "title").
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
# An inline code span.
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
# A repository path inside code: starts at one of the repo's top-level folders.
REPO_PATH = re.compile(
    r'(?<![\w./~$-])((?:il_ros|config|bench|docs|launch|test|sim)/[^\s`\'"(),;|]*)')
# Placeholders and patterns, not paths: config/<node>.yaml, launch/*.launch.py, {a,b}.
NOT_A_PATH = re.compile(r'[<>{}*$\[\]]')
# Paths written in the docs on purpose that are not files of this repository (user paths
# that happen to start like a repository folder). Keep this list short.
# The sim's relative ROS names (docs/ros-network.md, "Names and namespaces") read like
# paths under sim/.
ALLOWED_MISSING: frozenset[str] = frozenset({'sim/state', 'sim/success', 'sim/reset'})


def _markdown_files() -> list[Path]:
    files = [ROOT / 'README.md', ROOT / 'CHANGELOG.md']
    files += sorted((ROOT / 'docs').rglob('*.md'))
    return [f for f in files if f.is_file()]


def _manual_files() -> list[Path]:
    """README and docs/ (the CHANGELOG names old paths on purpose)."""
    return [f for f in _markdown_files() if f.name != 'CHANGELOG.md']


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _lines(path: Path):
    """Yield (line number, text, inside a fenced code block) for a markdown file."""
    fence = None
    for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        stripped = line.lstrip()
        marker = stripped[:3]
        if marker in ('```', '~~~'):
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            yield n, line, True
            continue
        yield n, line, fence is not None


def _report(what: str, offenders: list[str]) -> str:
    return f'{what} ({len(offenders)}):\n  ' + '\n  '.join(offenders)


def test_readme_is_short():
    """The README is a manual, not a lab notebook: at most 220 lines."""
    n = len((ROOT / 'README.md').read_text(encoding='utf-8').splitlines())
    assert n <= README_MAX_LINES, f'README.md has {n} lines (at most {README_MAX_LINES})'


def test_no_development_history_wording():
    """No result is labelled by a development period or by an earlier version of a table."""
    files = _markdown_files() + sorted((ROOT / 'config').rglob('*.yaml'))
    offenders = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding='utf-8').splitlines(), 1):
            for m in HISTORY_WORDING.finditer(line):
                offenders.append(f'{_rel(f)}:{n}: "{m.group(0)}"')
    assert not offenders, _report('development-history wording', offenders)


def _link_targets(path: Path):
    for n, line, in_code in _lines(path):
        if in_code:
            continue
        text = CODE_SPAN.sub('', line)
        for m in LINK.finditer(text):
            yield n, m.group(1)


def test_relative_links_exist():
    """Every relative link and image in README, CHANGELOG and docs/ points to a file."""
    offenders = []
    for f in _markdown_files():
        for n, target in _link_targets(f):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.IGNORECASE) or target.startswith('#'):
                continue     # a URL (http:, mailto:) or an anchor in the same page
            file_part = target.split('#', 1)[0].split('?', 1)[0]
            if not (f.parent / file_part).exists():
                offenders.append(f'{_rel(f)}:{n}: {target}')
    assert not offenders, _report('links to missing files', offenders)


def _code_texts(path: Path):
    """Yield (line number, code text): inline code spans and fenced code lines."""
    for n, line, in_code in _lines(path):
        if in_code:
            yield n, line
        else:
            for m in CODE_SPAN.finditer(line):
                yield n, m.group(2)


def _repo_paths(code: str):
    for m in REPO_PATH.finditer(code):
        p = m.group(1)
        p = re.sub(r'::.*$', '', p)            # test/test_x.py::test_name
        p = re.sub(r':\d+$', '', p)            # file.py:12
        p = p.rstrip('.:')
        if p and not NOT_A_PATH.search(p):
            yield p


def test_code_paths_exist():
    """Every repository path in README and docs/ code (``il_ros/...``, ``config/...``) exists."""
    offenders = []
    for f in _manual_files():
        for n, code in _code_texts(f):
            for p in _repo_paths(code):
                if p not in ALLOWED_MISSING and not (ROOT / p).exists():
                    offenders.append(f'{_rel(f)}:{n}: {p}')
    assert not offenders, _report('paths that do not exist in the repository', offenders)


def test_path_scan_sees_paths():
    """The path scan finds paths in code spans and skips placeholders (guards the regexes)."""
    code = 'il-ros train --config config/train/demo.yaml, `il_ros/sim/`, config/<node>.yaml'
    assert list(_repo_paths(code)) == ['config/train/demo.yaml', 'il_ros/sim/']
    assert list(_repo_paths('.venv/bin/il-ros data/bags/lift runs/x/test/y')) == []
    line = 'see [a](docs/x.md#y) and ![b](img/c.png "t") and [u](https://e.org)'
    assert [m.group(1) for m in LINK.finditer(line)] == ['docs/x.md#y', 'img/c.png',
                                                          'https://e.org']

"""package.xml declares what il_ros imports, under keys the rosdep database resolves.

- Every top-level third-party import in il_ros/ and launch/ maps (IMPORTS) to a package.xml
  dependency. An import missing from IMPORTS fails until it is declared there and here.
- Message packages named in config/ and il_ros/ (``pkg/msg/Type``: the recorder and the
  command adapters import them by name at run time) are declared too.
- Every declared key resolves on Humble (Ubuntu jammy), Jazzy and Kilted (Ubuntu noble) in
  test/data/rosdep_snapshot.yaml, the rosdistro entries of these keys copied with the commit
  they came from. With ROSDISTRO_DIR set to a ros/rosdistro clone, the keys and the snapshot
  are checked against its rosdep/*.yaml and <distro>/distribution.yaml instead;
  ``python test/test_package_deps.py ROSDISTRO_DIR`` rewrites the snapshot from a clone.
  The real rosdep check is .ci/rosdep-check (docs/ros-workspace.md).
- The pip package behind each Python key is pinned in requirements.txt.
"""
from __future__ import annotations

import ast
import functools
import os
from pathlib import Path
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / 'test' / 'data' / 'rosdep_snapshot.yaml'
# (distribution, os, os codename): where every key must resolve.
TARGETS = (('humble', 'ubuntu', 'jammy'), ('jazzy', 'ubuntu', 'noble'),
           ('kilted', 'ubuntu', 'noble'))

# Top-level import -> (package.xml key, pip package pinned in requirements.txt or None).
# A key of None means rosdep has none: package.xml must name the module in a comment.
IMPORTS: dict[str, tuple[str | None, str | None]] = {
    'numpy': ('python3-numpy', 'numpy'),
    'yaml': ('python3-yaml', 'pyyaml'),
    'cv2': ('python3-opencv', 'opencv-python-headless'),
    'torch': ('python3-torch', 'torch'),
    'mujoco': ('python3-mujoco-pip', 'mujoco'),
    'rosbags': ('python3-rosbags-pip', 'rosbags'),
    'h5py': ('python3-h5py', 'h5py'),
    'matplotlib': ('python3-matplotlib', 'matplotlib'),
    'tqdm': ('python3-tqdm', 'tqdm'),
    'safetensors': (None, 'safetensors'),
    'pyarrow': (None, 'pyarrow'),
    'av': (None, 'av'),
    'rerun': (None, 'rerun-sdk'),
    'foxglove': (None, 'foxglove-sdk'),
    'rclpy': ('rclpy', 'ros-rclpy'),
    'ament_index_python': ('ament_index_python', None),   # comes with ros-rclpy
    'launch': ('launch', None),             # a ROS install, or ../shared/ros2-tools
    'launch_ros': ('launch_ros', None),
}
# Declared without being imported, and why.
NOT_IMPORTED = {
    'joy': 'the joystick driver node that publishes /joy for teleop mode:=joy',
    'lifecycle_msgs': 'the managed (lifecycle) node interfaces',
    'python3-pytest': 'test_depend', 'python3-pytest-timeout': 'test_depend (pytest.ini)',
    'python3-pytest-xdist': 'test_depend (make test runs the suite on workers)',
}
INTERFACE_PKG = re.compile(r'^\w+_(?:msgs|srvs|interfaces)$')
MSG_TYPE = re.compile(r'\b([a-z][a-z0-9_]*_(?:msgs|srvs|interfaces))/(?:msg|srv|action)/[A-Z]')
INSTALLERS = {'apt', 'pip', 'source', 'packages', 'dnf', 'yum', 'pacman', 'homebrew'}


def declared() -> dict[str, str]:
    """package.xml dependency key -> its tag (exec_depend, test_depend, ...)."""
    root = ET.parse(REPO / 'package.xml').getroot()
    return {e.text.strip(): e.tag for e in root
            if e.tag.endswith('depend') and e.text}


@functools.cache
def third_party_imports() -> dict[str, list[str]]:
    """Top-level module -> files importing it, for il_ros/ and launch/ (not stdlib)."""
    found: dict[str, list[str]] = {}
    files = sorted((REPO / 'il_ros').rglob('*.py')) + sorted((REPO / 'launch').glob('*.py'))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top in sys.stdlib_module_names or top in ('il_ros', '__future__'):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def named_interface_packages() -> set[str]:
    """Message packages named as ``pkg/msg/Type`` in config/ and il_ros/."""
    names = set()
    for path in [*(REPO / 'config').rglob('*.yaml'), *(REPO / 'il_ros').rglob('*.py')]:
        names |= set(MSG_TYPE.findall(path.read_text()))
    return names


def test_every_third_party_import_is_declared():
    deps = declared()
    imports = third_party_imports()
    assert 'torch' in imports and 'rclpy' in imports, 'the import scan is broken'
    unknown = {m: f[:2] for m, f in imports.items()
               if m not in IMPORTS and not INTERFACE_PKG.match(m)}
    assert not unknown, (f'third-party imports missing from IMPORTS (add a package.xml key '
                         f'and map it here): {unknown}')
    comments = ' '.join(re.findall(r'<!--(.*?)-->', (REPO / 'package.xml').read_text(), re.S))
    missing = []
    for module in sorted(imports):
        key = IMPORTS[module][0] if module in IMPORTS else module
        if key is None and module not in comments:
            missing.append(f'{module}: no rosdep key, so a comment must name it')
        elif key is not None and key not in deps:
            missing.append(f'{module} -> {key} (imported in {imports[module][0]})')
    assert not missing, f'package.xml lacks: {missing}'


def test_message_packages_named_by_type_are_declared():
    named = named_interface_packages()
    assert {'sensor_msgs', 'std_msgs'} <= named, 'the message-type scan is broken'
    missing = sorted(named - set(declared()))
    assert not missing, f'package.xml lacks exec_depend for {missing}'


def test_every_declared_key_is_used_or_explained():
    used = {IMPORTS[m][0] if m in IMPORTS else m for m in third_party_imports()}
    used |= named_interface_packages()
    stale = sorted(k for k in declared() if k not in used and k not in NOT_IMPORTED
                   and not INTERFACE_PKG.match(k))
    assert not stale, f'package.xml declares {stale}, which nothing imports (or explain why)'


def test_python_keys_have_a_pip_pin():
    pins = {re.split(r'[=<>~! ]', ln, maxsplit=1)[0].lower()
            for ln in (REPO / 'requirements.txt').read_text().splitlines()
            if ln.strip() and not ln.startswith('#')}
    imported = third_party_imports()
    unpinned = [pip for module, (_, pip) in IMPORTS.items()
                if pip and module in imported and pip not in pins]
    assert not unpinned, f'requirements.txt does not pin {unpinned}'


def resolves(rule, os_name: str, codename: str) -> bool:
    """Whether a rosdep rule (a rosdep/*.yaml entry) gives something to install."""
    r = rule.get(os_name, rule.get('*')) if isinstance(rule, dict) else None
    if isinstance(r, dict) and not INSTALLERS & set(r):     # per-codename rules
        r = r.get(codename, r.get('*'))
    return bool(r)


def unresolved(keys, rules: dict, packages: dict) -> list[str]:
    """``key distro`` for each key that resolves neither as a ROS package nor a rosdep rule."""
    out = []
    for key in sorted(keys):
        for distro, os_name, codename in TARGETS:
            if key in packages and packages[key].get(distro):
                continue
            if key in rules and resolves(rules[key], os_name, codename):
                continue
            out.append(f'{key} ({distro}, {os_name} {codename})')
    return out


def snapshot_from_clone(rosdistro: Path, keys) -> dict:
    """The snapshot's content for ``keys``, read from a ros/rosdistro clone."""
    rules = {}
    for name in ('base', 'python'):
        rules.update(yaml.safe_load((rosdistro / 'rosdep' / f'{name}.yaml').read_text()))
    packages: dict[str, dict[str, str]] = {}
    for distro, _, _ in TARGETS:
        dist = yaml.safe_load((rosdistro / distro / 'distribution.yaml').read_text())
        for repo_name, repo in dist['repositories'].items():
            release = repo.get('release') or {}
            for pkg in release.get('packages', [repo_name]):
                if pkg in keys and release.get('version'):
                    packages.setdefault(pkg, {})[distro] = release['version']
    try:
        commit = subprocess.run(['git', '-C', str(rosdistro), 'rev-parse', 'HEAD'],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ''
    return {'rosdistro_commit': commit or 'unknown',
            'ros_packages': dict(sorted(packages.items())),
            'rosdep_keys': {k: rules[k] for k in sorted(keys) if k in rules}}


def test_declared_keys_resolve_in_the_snapshot():
    snap = yaml.safe_load(SNAPSHOT.read_text())
    bad = unresolved(declared(), snap['rosdep_keys'], snap['ros_packages'])
    assert not bad, (f'not resolvable per {SNAPSHOT.name} (rosdistro '
                     f'{snap["rosdistro_commit"][:10]}): {bad}')


def test_the_resolver_refuses_what_rosdep_refuses():
    rules = {'a': {'ubuntu': {'*': ['x'], 'jammy': None}}, 'b': {'debian': ['x']},
             'c': {'ubuntu': {'pip': {'packages': ['c']}}}, 'd': {'*': {'pip': {'packages': []}}}}
    assert unresolved(['a', 'b', 'c'], rules, {'p': {'kilted': '1'}}) == [
        'a (humble, ubuntu jammy)', 'b (humble, ubuntu jammy)', 'b (jazzy, ubuntu noble)',
        'b (kilted, ubuntu noble)']
    assert resolves(rules['c'], 'ubuntu', 'noble') and resolves(rules['d'], 'ubuntu', 'noble')
    assert unresolved(['p'], {}, {'p': {'kilted': '1'}}) == [
        'p (humble, ubuntu jammy)', 'p (jazzy, ubuntu noble)']


@pytest.mark.skipif(not os.environ.get('ROSDISTRO_DIR'),
                    reason='set ROSDISTRO_DIR to a ros/rosdistro clone to check against it')
def test_declared_keys_resolve_in_a_rosdistro_clone():
    clone = Path(os.environ['ROSDISTRO_DIR'])
    fresh = snapshot_from_clone(clone, set(declared()))
    bad = unresolved(declared(), fresh['rosdep_keys'], fresh['ros_packages'])
    assert not bad, f'not resolvable in {clone}: {bad}'
    snap = yaml.safe_load(SNAPSHOT.read_text())
    assert snap['rosdep_keys'] == fresh['rosdep_keys'], \
        f'{SNAPSHOT.name} is stale: python test/test_package_deps.py {clone}'


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python test/test_package_deps.py ROSDISTRO_DIR')
    data = snapshot_from_clone(Path(sys.argv[1]), set(declared()))
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text('# The rosdistro entries of the keys package.xml declares: ROS package '
                        'releases per\n# distribution and the rosdep rules. Written by '
                        '`python test/test_package_deps.py ROSDISTRO_DIR`.\n'
                        + yaml.safe_dump(data, sort_keys=False, width=99))
    print(f'wrote {SNAPSHOT} from rosdistro {data["rosdistro_commit"]}')

"""The core never imports rclpy or message packages (rule: rclpy stays in il_ros/ros).

Two checks: importing every core module with ROS blocked (what runs at import time), and an
AST scan of every core file that also sees imports inside functions (what runs later).
"""
import ast
from pathlib import Path
import subprocess
import sys

BLOCKER = r'''
import importlib, pkgutil, sys
class Block:
    BLOCKED = ('rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'trajectory_msgs',
               'std_srvs', 'rosgraph_msgs', 'builtin_interfaces')
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.BLOCKED:
            raise ImportError(f'core imported {name}')
sys.meta_path.insert(0, Block())
import il_ros
count = 0
for sub in ('keys', 'config', 'resources', 'fsio', 'render', 'checkpoint_meta', 'images', 'data',
            'models', 'training', 'control', 'sim'):
    mod = importlib.import_module('il_ros.' + sub)
    count += 1
    if hasattr(mod, '__path__'):
        for info in pkgutil.walk_packages(mod.__path__, mod.__name__ + '.'):
            importlib.import_module(info.name)
            count += 1
print('imported', count)
'''


def test_core_imports_with_rclpy_blocked():
    out = subprocess.run([sys.executable, '-c', BLOCKER], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) >= 8


def test_rclpy_blocker_really_blocks():
    """The check above would catch a leak: a module importing rclpy fails under the blocker."""
    code = BLOCKER.split('import il_ros')[0] + 'import rclpy\n'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and 'core imported rclpy' in out.stderr


# ---- every import statement of the core, at any depth (a lazy import is a dependency too)
ROOT = Path(__file__).resolve().parent.parent
CORE_PACKAGES = ('data', 'models', 'training', 'control', 'sim')
CORE_MODULES = ('__init__', 'keys', 'config', 'fsio', 'render', 'resources', 'checkpoint_meta')
ROS_SUFFIXES = ('_msgs', '_srvs', '_interfaces')


def core_files() -> list[Path]:
    """Return the files of the ROS-free core."""
    files = [ROOT / 'il_ros' / f'{m}.py' for m in CORE_MODULES]
    for pkg in CORE_PACKAGES:
        files += sorted((ROOT / 'il_ros' / pkg).rglob('*.py'))
    return files


def is_ros(module: str) -> bool:
    """Tell whether importing ``module`` needs ROS (rclpy, message/service packages...)."""
    top = module.split('.')[0]
    return (top in ('rclpy', 'launch', 'launch_ros') or top.startswith('rosidl')
            or top.endswith(ROS_SUFFIXES) or module == 'il_ros.ros'
            or module.startswith('il_ros.ros.'))


def ros_imports(source: str, filename: str = '<source>') -> list[str]:
    """Return 'file:line: module' for every ROS import in ``source``, however deep.

    Covers ``import x``, ``from x import y`` (and ``from il_ros import ros``), and
    ``importlib.import_module('x')`` / ``__import__('x')`` with a literal name.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f'{node.module}.{a.name}' for a in node.names
                                     if node.module == 'il_ros']
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and ast.unparse(node.func) in ('importlib.import_module', 'import_module',
                                               '__import__'):
            names = [node.args[0].value]
        found += [(node.lineno, n) for n in names if is_ros(n)]
    return [f'{filename}:{line}: {n}' for line, n in sorted(found)]


def test_core_has_no_ros_import_at_any_depth():
    files = core_files()
    assert len(files) > 60 and all(f.is_file() for f in files), [
        f for f in files if not f.is_file()]
    found = [hit for f in files
             for hit in ros_imports(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, 'the core imports ROS (move it to il_ros/ros or glue):\n' + '\n'.join(
        found)


def test_scanner_finds_function_level_ros_imports():
    """The scan above can fail: it sees imports inside functions, methods and branches."""
    source = '''
import numpy as np
from il_ros import keys

def f():
    import rclpy
    if True:
        from std_msgs.msg import String

class A:
    def g(self):
        from il_ros.ros.conversions import image_msg
        from il_ros import ros
        import importlib
        importlib.import_module('rcl_interfaces.msg')
        from rosidl_runtime_py import message_to_ordereddict
'''
    assert ros_imports(source, 'x.py') == [
        'x.py:6: rclpy', 'x.py:8: std_msgs.msg', 'x.py:12: il_ros.ros.conversions',
        'x.py:13: il_ros.ros', 'x.py:15: rcl_interfaces.msg',
        'x.py:16: rosidl_runtime_py']

"""The core never imports rclpy or message packages (rule: rclpy stays in il_ros/ros)."""
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
for sub in ('keys', 'config', 'resources', 'data', 'models', 'training', 'control', 'sim'):
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

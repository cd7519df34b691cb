"""The package installs the way colcon/ament expects.

Builds a wheel from setup.py and checks its contents: the ament index marker, package.xml,
every launch file, config file and MJCF scene under share/il_ros, and one console script per
node plus `il-ros`. Also checks package.xml declares the message packages the nodes import.
"""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_ament_data_and_entry_points(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                          '--no-build-isolation', '-q', '-w', str(tmp_path), str(REPO)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    wheel = next(tmp_path.glob('il_ros-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    data = {n.split('.data/data/', 1)[1] for n in names if '.data/data/' in n}
    assert 'share/ament_index/resource_index/packages/il_ros' in data
    assert 'share/il_ros/package.xml' in data
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('sim', '*.xml')):
        files = sorted((REPO / folder).glob(pattern))
        assert files, f'no {pattern} in {folder}/'
        for f in files:
            assert f'share/il_ros/{folder}/{f.name}' in data, f'{f} not installed'
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    for node in ('sim_robot', 'teleop', 'recorder'):
        assert f'{node} = il_ros.ros.{node}:main' in scripts
    assert 'il-ros = il_ros.cli:main' in scripts


def test_package_xml_declares_imported_message_packages():
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root.findall('exec_depend')}
    imported = set()
    for src in (REPO / 'il_ros' / 'ros').glob('*.py'):
        imported |= set(re.findall(r'^\s*from (\w+_(?:msgs|srvs|interfaces)|rclpy)\b',
                                   src.read_text(), re.M))
    assert imported, 'no ROS imports found: the regex is broken'
    missing = imported - deps
    assert not missing, f'package.xml lacks exec_depend for {sorted(missing)}'

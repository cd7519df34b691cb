"""ament_python setup for il_ros: works under colcon and as a plain pip install."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'il_ros'

# One entry per node: `ros2 run il_ros <name>` and `il-ros node <name>` both reach it.
NODES = ['sim_robot', 'teleop', 'recorder', 'trainer', 'controller', 'supervisor']


def tree(src):
    """data_files entries that install a folder tree under share/il_ros/<src>."""
    out = []
    for root, _, files in os.walk(src):
        if files:
            dest = os.path.join('share', PACKAGE, root)
            out.append((dest, [os.path.join(root, f) for f in files]))
    return out


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        *tree('config'),
        *tree('sim'),
    ],
    package_data={PACKAGE: []},
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='il_ros developers',
    maintainer_email='il_ros@example.com',
    description='Imitation learning for ROS 2 robots, from teleoperation to HG-DAgger.',
    license='Apache-2.0',
    # colcon runs `colcon test` with pytest only when pytest is a declared test dependency;
    # setuptools ignores tests_require, so it is the 'test' extra.
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'il-ros = il_ros.cli:main',
            *[f'{n} = il_ros.ros.{n}:main' for n in NODES],
        ],
    },
)

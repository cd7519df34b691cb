"""The shipped Fast DDS profile (config/dds/fastdds.xml): valid, accepted, and in effect.

Fast DDS reports a profile it cannot parse only as ``XMLPARSER Error`` lines on stderr and
then runs on its defaults, so the real-process test reads the processes' output for them, and
checks in /proc/<pid>/maps that the profile's 32 MB shared-memory segment was created. No
loss figure is asserted here: bench/record.py measures that.
"""
from __future__ import annotations

from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import wait_for
from il_ros.launcher import dds_profile_env, dds_profile_path

NS = '{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}'
DDS_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
PARSE_ERROR = re.compile(r'XMLPARSER|Error parsing|realpath failed')

# A best-effort (sensor-data QoS) publisher of 640x480 rgb8 images at 10 Hz, as a camera
# driver publishes them, and a subscriber that prints how many arrived.
PUBLISHER = '''
import time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('dds_profile_pub')
pub = node.create_publisher(Image, '/dds_profile_test/image', qos_profile_sensor_data)
img = Image(height=480, width=640, encoding='rgb8', step=1920, data=bytes(921600))
while True:
    pub.publish(img)
    time.sleep(0.1)
'''
SUBSCRIBER = '''
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('dds_profile_sub')
n = [0]
def got(msg):
    n[0] += 1
    print('received', n[0], len(msg.data), flush=True)
node.create_subscription(Image, '/dds_profile_test/image', got, qos_profile_sensor_data)
rclpy.spin(node)
'''
# A process that only creates a node: enough for Fast DDS to load the profile.
NODE_ONLY = '''
import time, rclpy
rclpy.init()
node = rclpy.create_node('dds_profile_probe')
print('node up', flush=True)
time.sleep(60)
'''


def shm_segments_mb(pid: int) -> list[float]:
    """Sizes of the Fast DDS shared-memory segments a process has mapped, in MB."""
    sizes = []
    for line in Path(f'/proc/{pid}/maps').read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and re.fullmatch(r'/dev/shm/fastdds_[0-9a-f]+', fields[5]):
            lo, hi = (int(x, 16) for x in fields[0].split('-'))
            sizes.append((hi - lo) / 2**20)
    return sizes


@pytest.fixture
def profile_env(monkeypatch):
    """The environment il-ros gives node processes: the shipped profile, nothing of the user's."""
    for name in DDS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = dds_profile_env({})
    assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': str(dds_profile_path())}
    return env


def test_profile_is_well_formed_and_self_consistent():
    root = ET.parse(dds_profile_path()).getroot()
    assert root.tag == f'{NS}dds'
    descriptors = {d.findtext(f'{NS}transport_id'): d
                   for d in root.iter(f'{NS}transport_descriptor')}
    shm = descriptors['il_ros_shm']
    assert shm.findtext(f'{NS}type') == 'SHM'
    assert int(shm.findtext(f'{NS}segment_size')) >= 32 * 2**20  # a VGA image is 0.9 MB
    # UDP stays: discovery and other machines still need it.
    assert any(d.findtext(f'{NS}type') == 'UDPv4' for d in descriptors.values())
    participants = [p for p in root.iter(f'{NS}participant')
                    if p.get('is_default_profile') == 'true']
    assert len(participants) == 1
    rtps = participants[0].find(f'{NS}rtps')
    assert rtps.findtext(f'{NS}useBuiltinTransports') == 'false'
    used = [t.text for t in rtps.find(f'{NS}userTransports')]
    assert sorted(used) == sorted(descriptors)


def test_fast_dds_accepts_the_profile_and_large_best_effort_samples_arrive(procs, profile_env):
    sub = procs.start([sys.executable, '-c', SUBSCRIBER], 'sub', env=profile_env)
    pub = procs.start([sys.executable, '-c', PUBLISHER], 'pub', env=profile_env)
    wait_for(lambda: procs.log(sub).count('received') >= 3 or sub.poll() is not None
             or pub.poll() is not None, 90, what='three 640x480 images at the subscriber')
    assert sub.poll() is None and pub.poll() is None, procs.log(pub) + procs.log(sub)
    assert 'received 3 921600' in procs.log(sub)
    for p in (pub, sub):
        assert not PARSE_ERROR.search(procs.log(p)), procs.log(p)
        # The profile is in effect: the process mapped the 32 MB segment it asks for.
        assert any(mb >= 32 for mb in shm_segments_mb(p.pid)), shm_segments_mb(p.pid)


def test_a_broken_profile_is_reported_on_stderr(procs, tmp_path, monkeypatch):
    """The check above can fail: Fast DDS names a profile it cannot parse, then runs on."""
    for name in DDS_VARS:
        monkeypatch.delenv(name, raising=False)
    bad = tmp_path / 'bad.xml'
    bad.write_text(dds_profile_path().read_text().replace('segment_size>', 'segmentsize>'))
    p = procs.start([sys.executable, '-c', NODE_ONLY], 'probe',
                    env={'FASTDDS_DEFAULT_PROFILES_FILE': str(bad)})
    wait_for(lambda: 'node up' in procs.log(p) or p.poll() is not None, 60,
             what='the probe node')
    assert PARSE_ERROR.search(procs.log(p)), procs.log(p)
    assert not any(mb >= 32 for mb in shm_segments_mb(p.pid))

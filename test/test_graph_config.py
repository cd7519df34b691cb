"""The node graph as data: validation, parameter mapping, and the argv the launcher builds."""
from pathlib import Path
import sys

import pytest

from il_ros.config import ConfigError, load_graph, save_yaml
from il_ros.launcher import dds_profile_path, node_command, ros_env

FASTDDS, FASTRTPS = 'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'


def test_default_graph_loads_and_maps_args():
    g = load_graph()
    assert {'sim', 'record'} <= set(g.graphs)
    assert set(g.graphs['record']) == {'sim_robot', 'teleop', 'recorder'}
    params = g.node_params('record', 'recorder', {'out': '/tmp/x', 'episodes': '3'})
    assert params['output_dir'] == '/tmp/x' and params['auto_episodes'] == '3'
    assert params['use_sim_time'] is True  # fixed override of the record graph
    # Unset arguments fall back to their declared default.
    assert g.node_params('sim', 'sim_robot', {})['task'] == g.args['task'].default
    assert g.graph_args('sim') == ['task', 'seed', 'rtf', 'cameras']


def test_node_command_carries_params_file_and_overrides():
    g = load_graph()
    cmd = node_command(g, 'record', 'sim_robot', {'task': 'reach_around', 'rtf': 4.0,
                                                  'cameras': '[front,wrist]'})
    assert cmd[:3] == [sys.executable, '-m', 'il_ros.ros.sim_robot']
    assert '--params-file' in cmd and cmd[cmd.index('--params-file') + 1].endswith(
        'config/sim_robot.yaml')
    assert 'task:=reach_around' in cmd and 'real_time_factor:=4.0' in cmd
    assert 'cameras:=[front,wrist]' in cmd and '__node:=sim_robot' in cmd


@pytest.mark.parametrize('bad, message', [
    ({'nodes': {'a': {'executable': 'x'}}, 'graphs': {'g': {'b': {}}}}, 'undefined node'),
    ({'nodes': {'a': {'executable': 'x', 'args': {'p': 'nope'}}}, 'graphs': {}},
     'undeclared argument'),
    ({'nodes': {'a': {'executable': 'x', 'colour': 1}}, 'graphs': {}}, "unknown key"),
    ({'nodes': {'a': {'executable': 'not-an-identifier'}}, 'graphs': {}}, 'identifier'),
])
def test_bad_graph_names_the_file_and_fault(tmp_path, bad, message):
    path = tmp_path / 'graph.yaml'
    save_yaml(bad, path)
    with pytest.raises(ConfigError, match=message) as e:
        load_graph(path)
    assert str(path) in str(e.value)


def test_missing_graph_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match='file not found'):
        load_graph(tmp_path / 'nope.yaml')


@pytest.mark.parametrize('isolate', [True, False])
def test_ros_env_applies_the_shipped_dds_profile(isolate):
    env = ros_env({'PATH': '/usr/bin', 'ROS_DISTRO': 'kilted'}, isolate=isolate)
    path = Path(env[FASTDDS])
    assert path == dds_profile_path() and path.is_file()
    assert path.parts[-3:] == ('config', 'dds', 'fastdds.xml')
    # Fast DDS 3 reads only the new name; the old one would add a warning to every node.
    assert FASTRTPS not in env
    assert FASTRTPS not in ros_env({'PATH': '/usr/bin'})


@pytest.mark.parametrize('distro', ['humble', 'Jazzy'])
def test_ros_env_also_sets_the_fast_dds_2_name_where_it_is_read(distro):
    env = ros_env({'ROS_DISTRO': distro})
    assert env[FASTDDS] == env[FASTRTPS] == str(dds_profile_path())


@pytest.mark.parametrize('name', [FASTDDS, FASTRTPS])
def test_a_profile_the_user_set_wins(name):
    env = ros_env({name: '/home/me/my_profile.xml', 'ROS_DISTRO': 'jazzy'})
    assert env[name] == '/home/me/my_profile.xml'
    other = FASTRTPS if name == FASTDDS else FASTDDS
    assert other not in env  # ours is not added beside it under the other name

"""The node graph as data: validation, parameter mapping, and the argv the launcher builds."""
import sys

import pytest

from il_ros.config import ConfigError, load_graph, save_yaml
from il_ros.launcher import node_command


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

"""The node graph as data: validation, parameter mapping, and the argv the launcher builds."""
from pathlib import Path
import sys

import pytest

from il_ros.config import ConfigError, load_graph, save_yaml
from il_ros.graph_plan import parse_arg, plan_graph
from il_ros.launcher import dds_profile_path, GraphRunner, node_command, ros_env

FASTDDS, FASTRTPS = 'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'


def test_default_graph_loads_and_maps_args():
    g = load_graph()
    assert {'sim', 'record'} <= set(g.graphs)
    assert set(g.graphs['record']) == {'sim_robot', 'teleop', 'recorder'}
    params = plan_graph('record', {'out': '/tmp/x', 'episodes': '3'}, g)['recorder'].params
    assert params['output_dir'] == '/tmp/x' and params['auto_episodes'] == 3
    assert params['use_sim_time'] is True  # fixed override of the record graph
    # Unset arguments fall back to their declared default.
    assert plan_graph('sim', {}, g)['sim_robot'].params['task'] == g.args['task'].default
    assert g.graph_args('sim') == ['robot', 'task', 'seed', 'rtf', 'cameras']


def test_node_command_carries_params_file_and_overrides():
    g = load_graph()
    plan = plan_graph('record', {'task': 'reach_around', 'rtf': 4.0,
                                 'cameras': '[front,wrist]'}, g)['sim_robot']
    cmd = node_command(plan)
    assert cmd[:3] == [sys.executable, '-m', 'il_ros.ros.sim_robot']
    assert '--params-file' in cmd and cmd[cmd.index('--params-file') + 1].endswith(
        'config/sim_robot.yaml')
    assert 'task:=reach_around' in cmd and 'real_time_factor:=4.0' in cmd
    assert 'cameras:=[front,wrist]' in cmd and '__node:=sim_robot' in cmd
    assert 'robot:=sim_arm' in cmd


def test_every_argument_default_parses_to_its_type():
    g = load_graph()
    for name, arg in g.args.items():
        parse_arg(name, arg.default, arg.type)


@pytest.mark.parametrize('arg, text, value', [
    ('rtf', '4', 4.0), ('rtf', 4, 4.0), ('noise', '0', 0.0), ('seed', '3', 3),
    ('episodes', 20, 20), ('enabled', 'true', True), ('enabled', 'false', False),
    ('cameras', '[front,wrist]', ['front', 'wrist']), ('cameras', 'wrist', ['wrist']),
    ('cameras', ('front',), ['front']), ('cameras', '', []),
    ('checkpoint', "''", ''), ('checkpoint', '', ''), ('task', '3', '3'),
    ('out', '/tmp/a b', '/tmp/a b'),
])
def test_launch_values_are_typed(arg, text, value):
    """``rtf:=4`` is the double 4.0 and ``seed:=3`` the integer 3, as the nodes declare."""
    got = parse_arg(arg, text, load_graph().args[arg].type)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize('arg, text', [
    ('rtf', 'fast'), ('seed', '1.5'), ('enabled', 'maybe'), ('cameras', '[1, 2]'),
    ('episodes', 'true')])
def test_a_value_of_the_wrong_type_names_the_argument(arg, text):
    with pytest.raises(ConfigError, match=f'graph argument {arg}='):
        parse_arg(arg, text, load_graph().args[arg].type)


def test_the_argv_keeps_types_as_the_node_declares_them(tmp_path):
    """il-ros gives ``-p`` text that ROS reads back as the planned type."""
    cmds = GraphRunner('record', {'rtf': '4', 'seed': '3', 'noise': '0', 'task': 'lift'},
                       tmp_path, env={}).commands()
    assert 'real_time_factor:=4.0' in cmds['sim_robot'] and 'seed:=3' in cmds['sim_robot']
    assert 'noise:=0.0' in cmds['teleop']
    cmds = GraphRunner('deploy', {'checkpoint': '', 'enabled': False}, tmp_path,
                       env={}).commands()
    assert "checkpoint:=''" in cmds['controller'] and 'enabled:=false' in cmds['controller']


def test_unknown_robot_and_camera_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown robot 'ur99'"):
        plan_graph('sim', {'robot': 'ur99'})
    with pytest.raises(ConfigError, match=r"sim_arm.yaml: cameras: .*\['side'\]"):
        plan_graph('record', {'cameras': '[front,side]'})


@pytest.mark.parametrize('bad, message', [
    ({'nodes': {'a': {'executable': 'x'}}, 'graphs': {'g': {'b': {}}}}, 'undefined node'),
    ({'nodes': {'a': {'executable': 'x', 'args': {'p': 'nope'}}}, 'graphs': {}},
     'undeclared argument'),
    ({'nodes': {'a': {'executable': 'x', 'colour': 1}}, 'graphs': {}}, "unknown key"),
    ({'nodes': {'a': {'executable': 'not-an-identifier'}}, 'graphs': {}}, 'identifier'),
    ({'nodes': {}, 'graphs': {}, 'args': {'x': {'default': '1', 'type': 'complex'}}},
     'is not one of'),
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


def test_a_spawned_node_gets_sigint_when_its_launcher_is_killed(tmp_path):
    """il-ros killed with SIGKILL (no chance to stop its graph) leaves no node running."""
    import os
    import signal
    import subprocess
    import sys
    import time
    child = ('import signal, sys, time\n'
             'signal.signal(signal.SIGINT, lambda *a: (open(sys.argv[1], "w").write("int"),'
             ' sys.exit(0)))\n'
             'open(sys.argv[2], "w").write("up")\n'
             'time.sleep(120)\n')
    parent = ('import sys, time\n'
              'from il_ros.launcher import spawn\n'
              f'p = spawn([sys.executable, "-c", {child!r}, sys.argv[1], sys.argv[2]], '
              'sys.argv[3])\n'
              'print(p.pid, flush=True)\n'
              'time.sleep(120)\n')
    got, up = tmp_path / 'got_sigint', tmp_path / 'up'
    launcher = subprocess.Popen([sys.executable, '-c', parent, str(got), str(up),
                                 str(tmp_path / 'child.log')], stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
    try:
        pid = int(launcher.stdout.readline())
        deadline = time.monotonic() + 60
        while not up.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert up.exists(), 'the child did not start'
        assert os.getsid(pid) == pid                      # its own session, as before
        launcher.kill()
        launcher.wait(10)
        while time.monotonic() < deadline and not got.exists():
            time.sleep(0.05)
        assert got.read_text() == 'int'                   # SIGINT: a node shuts down cleanly
        while time.monotonic() < deadline and os.path.exists(f'/proc/{pid}'):
            time.sleep(0.05)
        assert not os.path.exists(f'/proc/{pid}'), 'the child outlived its launcher'
    finally:
        launcher.kill()
        launcher.wait(10)
        if 'pid' in locals() and os.path.exists(f'/proc/{pid}'):
            os.kill(pid, signal.SIGKILL)

"""Launch files, checked structurally (CI has no ``launch``/``launch_ros``).

Each launch/*.launch.py is executed against recording stand-ins for the launch API, its
OpaqueFunction run with the declared defaults (or given arguments). The test then checks
what it asked for: the executables are console scripts of this package whose module has
``main``, the parameter files exist and are ``node_name: ros__parameters:`` YAML, every
parameter they set is one the node declares, and for the same arguments ``il-ros`` starts
the same nodes with the same parameters. test_launch_real.py runs them with the real
``ros2 launch`` where it is installed.
"""
from __future__ import annotations

import ast
import importlib.util
import logging
import sys
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
NODE_TYPES = ('Node', 'LifecycleNode')
DDS_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_launch_api(monkeypatch):
    """Install minimal ``launch`` / ``launch_ros`` modules that record their calls."""
    made = {}

    def mod(name, **attrs):
        m = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(m, k, v)
        monkeypatch.setitem(sys.modules, name, m)
        made[name] = m
        return m

    def cls(name):
        return type(name, (_Recorded,), {})

    mod('launch', LaunchDescription=cls('LaunchDescription'))
    mod('launch.actions', DeclareLaunchArgument=cls('DeclareLaunchArgument'),
        EmitEvent=cls('EmitEvent'), RegisterEventHandler=cls('RegisterEventHandler'),
        SetEnvironmentVariable=cls('SetEnvironmentVariable'),
        OpaqueFunction=cls('OpaqueFunction'))
    mod('launch.event_handlers', OnProcessExit=cls('OnProcessExit'),
        OnProcessStart=cls('OnProcessStart'))
    mod('launch.events', Shutdown=cls('Shutdown'), matches_action=cls('matches_action'))
    mod('launch.logging', get_logger=logging.getLogger)
    mod('launch.conditions', IfCondition=cls('IfCondition'))
    mod('launch.substitutions', LaunchConfiguration=cls('LaunchConfiguration'))
    mod('launch_ros')
    mod('launch_ros.actions', Node=cls('Node'), LifecycleNode=cls('LifecycleNode'))
    mod('launch_ros.event_handlers', OnStateTransition=cls('OnStateTransition'))
    mod('launch_ros.events')
    mod('launch_ros.events.lifecycle', ChangeState=cls('ChangeState'))
    mod('launch_ros.parameter_descriptions', ParameterValue=cls('ParameterValue'))
    # launch_graph is imported afresh against the stand-ins, and forgotten afterwards (set,
    # then delete: monkeypatch's undo removes what it set where nothing was), so a later
    # test importing it gets the real launch API.
    import il_ros.ros
    monkeypatch.setitem(sys.modules, 'il_ros.ros.launch_graph', None)
    monkeypatch.delitem(sys.modules, 'il_ros.ros.launch_graph')
    monkeypatch.setattr(il_ros.ros, 'launch_graph', None, raising=False)
    monkeypatch.delattr(il_ros.ros, 'launch_graph')
    # No ament index: the launch files start no joy_node even where a ROS install has one.
    monkeypatch.setenv('AMENT_PREFIX_PATH', '')
    return made


def _console_scripts() -> dict[str, str]:
    """console_scripts name -> module, read from setup.py without running it."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    nodes = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], 'id', '') == 'NODES')
    names = [e.value for e in nodes.value.elts]
    return {n: f'il_ros.ros.{n}' for n in names}


def _declared_params(module: str) -> set[str]:
    """Parameter names a node declares, read from its source (AST, nothing is run).

    Finds ``declare_parameter('x', ...)``, ``declare(self, 'x', ...)``, the ``p('x', ...)``
    shorthand, the string keys of module-level ``PARAMS = {...}`` / ``READ_ONLY = {...}``
    tables, and the first arguments of the rows of a ``PARAMS = (Param('x', ...), ...)``
    table, also in the node's ``<node>_params.py`` companion module when it has one.
    """
    path = REPO / (module.replace('.', '/') + '.py')
    companion = path.with_name(f'{path.stem}_params.py')
    trees = [ast.parse(f.read_text()) for f in (path, companion) if f.is_file()]
    found = {'use_sim_time'}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
            pos = {'declare_parameter': 0, 'p': 0, 'declare': 1}.get(name)
            if pos is not None and len(node.args) > pos and isinstance(
                    node.args[pos], ast.Constant) and isinstance(node.args[pos].value, str):
                found.add(node.args[pos].value)
        elif (isinstance(node, ast.Assign)
              and getattr(node.targets[0], 'id', '') in ('PARAMS', 'READ_ONLY')
              and isinstance(node.value, ast.Dict)):
            found |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        elif (isinstance(node, ast.AnnAssign | ast.Assign)
              and getattr(getattr(node, 'target', None) or node.targets[0], 'id', '') == 'PARAMS'
              and isinstance(node.value, ast.Tuple)):
            found |= {e.args[0].value for e in node.value.elts if isinstance(e, ast.Call)
                      and e.args and isinstance(e.args[0], ast.Constant)}
    return found


def _load(path: Path, **launch_args):
    """Run a launch file's generate_launch_description against the stubs; its entities.

    OpaqueFunctions are run with the launch arguments: the first declaration's default,
    unless ``launch_args`` gives the argument (as ``ros2 launch ... name:=value`` does).
    """
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = _flatten(module.generate_launch_description())
    config = {k: str(v) for k, v in launch_args.items()}
    for e in entities:
        if type(e).__name__ == 'DeclareLaunchArgument':
            config.setdefault(e.args[0], e.kwargs['default_value'])
    context = types.SimpleNamespace(launch_configurations=config)
    out = []
    for e in entities:
        if type(e).__name__ == 'OpaqueFunction':
            out += e.kwargs['function'](context, *e.kwargs.get('args', []))
        else:
            out.append(e)
    return out


def _flatten(ld) -> list:
    """The entities of a (stub) LaunchDescription, nested LaunchDescriptions included."""
    out = []
    for e in ld.args[0]:
        out += _flatten(e) if type(e).__name__ == 'LaunchDescription' else [e]
    return out


def test_there_are_launch_files():
    names = {p.name for p in LAUNCH_FILES}
    assert {'sim.launch.py', 'record.launch.py', 'deploy.launch.py'} <= names


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_structure(path, monkeypatch):
    ast.parse(path.read_text(), filename=str(path))  # parses
    _stub_launch_api(monkeypatch)
    entities = _load(path)
    nodes = [e for e in entities if type(e).__name__ in NODE_TYPES]
    declared_args = {e.args[0] for e in entities if type(e).__name__ == 'DeclareLaunchArgument'}
    assert nodes, f'{path.name} launches no node'
    for h in (e for e in entities if type(e).__name__ == 'RegisterEventHandler'):
        kw = h.args[0].kwargs
        target = kw.get('target_action', kw.get('target_lifecycle_node'))
        assert target in nodes, f'{path.name}: event handler targets a node not launched'
    scripts = _console_scripts()
    for node in nodes:
        kw = node.kwargs
        assert kw['package'] == 'il_ros'
        if 'condition' in kw:             # IfCondition(LaunchConfiguration(arg))
            arg = kw['condition'].args[0].args[0]
            assert arg in declared_args, f'{path.name}: condition on undeclared argument {arg}'
        exe = kw['executable']
        assert exe in scripts, f'{path.name}: executable {exe!r} is not a console script'
        if exe in ('controller', 'recorder'):       # managed: the launch configures it
            assert type(node).__name__ == 'LifecycleNode', f'{path.name}: {exe}'
        src = (REPO / (scripts[exe].replace('.', '/') + '.py'))
        assert src.is_file() and 'def main(args=None)' in src.read_text(), src
        declared = _declared_params(scripts[exe])
        for param in kw['parameters']:
            if isinstance(param, str):
                f = Path(param)
                assert f.is_file(), f'{path.name}: parameter file {f} does not exist'
                data = yaml.safe_load(f.read_text())
                assert list(data) == [kw['name']], f'{f}: top key must be {kw["name"]!r}'
                keys = set(data[kw['name']]['ros__parameters'])
            else:
                keys = set(param)
            unknown = keys - declared
            assert not unknown, f'{path.name}: {exe} does not declare parameters {unknown}'


def test_declared_params_detects_unknown():
    """The parameter check above can fail: a made-up name is not among the declared ones."""
    assert 'task' in _declared_params('il_ros.ros.sim_robot')
    assert 'no_such_param' not in _declared_params('il_ros.ros.sim_robot')


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_applies_the_dds_profile(path, monkeypatch):
    """Every launch file sets the shipped Fast DDS profile before its first node."""
    for name in DDS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('ROS_DISTRO', 'kilted')
    _stub_launch_api(monkeypatch)
    entities = _load(path)
    kinds = [type(e).__name__ for e in entities]
    sets = {e.args[0]: e.args[1] for e in entities if type(e).__name__ == 'SetEnvironmentVariable'}
    assert list(sets) == ['FASTDDS_DEFAULT_PROFILES_FILE'], sets
    profile = Path(sets['FASTDDS_DEFAULT_PROFILES_FILE'])
    assert profile.is_file() and profile.parts[-3:] == ('config', 'dds', 'fastdds.xml')
    assert kinds.index('SetEnvironmentVariable') < kinds.index('Node')


@pytest.mark.parametrize('name', DDS_VARS)
def test_launch_file_keeps_the_users_dds_profile(name, monkeypatch):
    for other in DDS_VARS:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, '/home/me/my_profile.xml')
    _stub_launch_api(monkeypatch)
    entities = _load(REPO / 'launch' / 'record.launch.py')
    assert not [e for e in entities if type(e).__name__ == 'SetEnvironmentVariable']


def test_every_node_declares_robot():
    from il_ros.config import load_graph
    g = load_graph()
    lagging = [n for n, spec in g.nodes.items() if 'robot' in spec.args
               and 'robot' not in _declared_params(f'il_ros.ros.{spec.executable}')]
    assert not lagging, f'nodes that do not declare robot yet: {lagging}'


# ---- the two front ends agree ----------------------------------------------------------

def _effective(params_file, overrides: dict, node: str) -> dict:
    """The parameters a node ends up with: its file, then the overrides."""
    out = dict(yaml.safe_load(Path(params_file).read_text())[node]['ros__parameters'])
    out.update(overrides)
    return out


def _from_launch(path: Path, monkeypatch, **launch_args) -> dict:
    """``{node: (executable, parameters)}`` that ``ros2 launch`` would start."""
    _stub_launch_api(monkeypatch)
    entities = _load(path, **launch_args)
    config = {k: str(v) for k, v in launch_args.items()}
    for e in entities:
        if type(e).__name__ == 'DeclareLaunchArgument':
            config.setdefault(e.args[0], e.kwargs['default_value'])
    out = {}
    for n in (e for e in entities if type(e).__name__ in NODE_TYPES):
        kw = n.kwargs
        if 'condition' in kw and config[kw['condition'].args[0].args[0]] != 'true':
            continue
        file, overrides = kw['parameters']
        overrides = {k: v.args[0] if type(v).__name__ == 'ParameterValue' else v
                     for k, v in overrides.items()}
        if type(n).__name__ == 'LifecycleNode':     # the launch drives it; il-ros: autostart
            assert overrides.pop('autostart') is False, kw['name']
        out[kw['name']] = (kw['executable'], _effective(file, overrides, kw['name']))
    return out


def _from_il_ros(commands: dict) -> dict:
    """The same, read back from the argv il-ros runs (``-p`` values parsed as YAML)."""
    out = {}
    for node, argv in commands.items():
        exe = argv[argv.index('-m') + 1].rsplit('.', 1)[1]
        file = argv[argv.index('--params-file') + 1]
        overrides = {}
        for i, a in enumerate(argv):
            if a == '-p':
                k, _, v = argv[i + 1].partition(':=')
                overrides[k] = yaml.safe_load(v)
        out[node] = (exe, _effective(file, overrides, node))
    return out


def _typed(nodes: dict) -> dict:
    """Values with their types, so that 4 and 4.0 differ."""
    return {n: (exe, {k: (type(v).__name__, v) for k, v in p.items()})
            for n, (exe, p) in nodes.items()}


def test_record_launch_and_il_ros_record_start_the_same_nodes(tmp_path, monkeypatch):
    from il_ros.recording import record_graph
    out = tmp_path / 'bags'
    launched = _from_launch(REPO / 'launch' / 'record.launch.py', monkeypatch, robot='panda',
                            task='lift', cameras='[front,wrist]', rtf='4', noise='0', seed='3',
                            episodes='2', out=str(out.resolve()))
    runner = record_graph(out, 'lift', 2, robot='panda', cameras=['front', 'wrist'], rtf=4.0,
                          noise=0.0, seed=3, env={})
    assert _typed(launched) == _typed(_from_il_ros(runner.commands()))
    sim, rec = launched['sim_robot'][1], launched['recorder'][1]
    assert sim['cameras'] == ['front', 'wrist'] and sim['real_time_factor'] == 4.0
    assert launched['teleop'][1]['noise'] == 0.0 and launched['teleop'][1]['robot'] == 'panda'
    assert {'front_camera/color/image_raw', 'wrist_camera/color/image_raw/compressed',
            'joint_states', 'panda_arm_controller/joint_trajectory'} <= set(rec['topics'])


def test_namespace_reaches_every_node_of_the_launch_and_of_il_ros(tmp_path, monkeypatch):
    from il_ros.recording import record_graph
    _stub_launch_api(monkeypatch)
    entities = _load(REPO / 'launch' / 'record.launch.py', namespace='robot1')
    nodes = {e.kwargs['name']: e.kwargs for e in entities if type(e).__name__ == 'Node'}
    assert nodes and all(kw.get('namespace') == 'robot1' for kw in nodes.values()), nodes
    runner = record_graph(tmp_path, 'lift', 1, env={}, namespace='robot1')
    for node, argv in runner.commands().items():
        assert argv[argv.index('__ns:=/robot1') - 1] == '-r', (node, argv)
    assert not any('__ns:=' in a for argv in record_graph(tmp_path, 'lift', 1, env={})
                   .commands().values() for a in argv)


def _fake_checkpoint(path: Path, cameras, rate) -> Path:
    """A checkpoint folder holding only its JSON description (what the plan reads)."""
    import json

    from il_ros.checkpoint_meta import CHECKPOINT_FORMAT, checkpoint_config_file
    path.mkdir()
    checkpoint_config_file(path).write_text(json.dumps({
        'format': CHECKPOINT_FORMAT, 'config': {},
        'spec': {'cameras': list(cameras), 'control_rate_hz': rate}}))
    return path


@pytest.mark.parametrize('cameras', [None, ['wrist']], ids=['checkpoint', 'explicit'])
def test_deploy_launch_and_il_ros_deploy_take_the_checkpoints_cameras(
        tmp_path, monkeypatch, cameras):
    """Both read the checkpoint's cameras and rate; an explicit camera list still wins."""
    from il_ros.cli import build_parser, deploy_graph
    ckpt = _fake_checkpoint(tmp_path / 'ckpt', ['front', 'wrist'], 10.0)
    launch_args = {'checkpoint': str(ckpt), 'task': 'lift', 'rtf': '2'}
    argv = ['deploy', '--checkpoint', str(ckpt), '--sim', 'lift', '--rtf', '2',
            '--log-dir', str(tmp_path / 'logs')]
    if cameras:
        launch_args['cameras'] = '[' + ','.join(cameras) + ']'
        argv += ['--cameras', *cameras]
    launched = _from_launch(REPO / 'launch' / 'deploy.launch.py', monkeypatch, **launch_args)
    runner, nodes = deploy_graph(build_parser().parse_args(argv))
    assert _typed(launched) == _typed(_from_il_ros(runner.commands(nodes)))
    assert set(launched) == {'sim_robot', 'controller'}
    assert launched['sim_robot'][1]['cameras'] == (cameras or ['front', 'wrist'])
    assert launched['controller'][1]['rate_hz'] == 10.0
    assert launched['sim_robot'][1]['state_rate_hz'] == 10.0


def test_a_bad_launch_value_names_the_argument(monkeypatch):
    from il_ros.config import ConfigError
    with pytest.raises(ConfigError, match="graph argument rtf='fast': must be a number"):
        _from_launch(REPO / 'launch' / 'sim.launch.py', monkeypatch, rtf='fast')

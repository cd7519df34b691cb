"""A Foxglove layout for a robot's recordings and live graph, built with the Foxglove SDK.

    il-ros foxglove-layout --robot panda --out panda_layout.json
    il-ros foxglove-layout --robot my_arm.yaml --cameras front --namespace robot1 --out x.json

Import the file in Foxglove (*Layouts* -> *Import from file*), then open a recorded bag (MCAP)
or connect to a running graph. The layout shows, from the robot description:

- one Image panel per camera (its topic, ``Image`` or ``CompressedImage``);
- a state-transitions bar of ``il/control_source`` (who drives: policy, intervention, hold;
  a demonstration recording has no such topic and the bar stays empty);
- the measured joint positions (``joint_states``, every entry by index: a driver may
  publish its joints in any order) and the commanded joint targets on the robot's command
  topic (``JointTrajectory`` first point, ``Float64MultiArray`` data or ``JointState``
  positions), each as a plot;
- the ``/diagnostics`` summary (live graphs only: the recorder does not store it).

Topic names are resolved as the recorder stores them (``--namespace`` for a namespaced
graph). The layout JSON comes from the ``foxglove-sdk`` package's layout classes, so its
schema is Foxglove's own.
"""
from __future__ import annotations

import json
from pathlib import Path

from il_ros import keys

COMMAND_VALUES = {'joint_trajectory': '.points[0].positions', 'float64_multi_array': '.data',
                  'joint_state': '.position'}
"""The message path of the joint targets in each command type."""


def layout_topics(robot, cameras=None, namespace: str = '') -> dict:
    """The resolved topics the layout shows.

    Keys: cameras ({name: (topic, message type)}), joint_states, command, control_source.
    """
    ns = keys.normalize_namespace(namespace) or '/'
    names = robot.camera_names if cameras is None else list(cameras)
    robot.check_cameras(names, 'the layout')
    return {'cameras': {c: (keys.resolve_name(robot.camera(c).topic, ns), robot.camera(c).type)
                        for c in names},
            'joint_states': keys.resolve_name(robot.joint_states.topic, ns),
            'command': keys.resolve_name(robot.command.topic, ns),
            'control_source': keys.resolve_name(keys.TOPIC_CONTROL_SOURCE, ns)}


def foxglove_layout(robot, cameras=None, namespace: str = ''):
    """The layout (a ``foxglove.layouts.Layout``) for ``robot``'s cameras, joints and command."""
    from foxglove import layouts as fl
    t = layout_topics(robot, cameras, namespace)
    images = [fl.SplitItem(content=fl.ImagePanel(
        title=f'{name} ({typ})', config=fl.ImageConfig(
            image_mode=fl.ImageModeConfig(image_topic=topic))))
        for name, (topic, typ) in t['cameras'].items()]
    source = fl.StateTransitionsPanel(title='Who drives (il/control_source)', config=fl.
                                      StateTransitionsConfig(paths=[fl.StateTransitionsSeries(
                                          value=f'{t["control_source"]}.data',
                                          label='control source')], is_synced=True))

    def plot(title, path, label):
        return fl.PlotPanel(title=title, config=fl.PlotConfig(
            paths=[fl.PlotSeries(value=path, label=label, array_expansion='byIndex')],
            is_synced=True, show_legend=True))
    joints = plot('Measured joint positions', f'{t["joint_states"]}.position', 'position')
    command = plot(f'Commanded targets ({robot.command.type})',
                   t['command'] + COMMAND_VALUES[robot.command.type], 'target')
    right = fl.SplitContainer(direction='column', items=[
        fl.SplitItem(proportion=0.6, content=source), fl.SplitItem(proportion=2, content=joints),
        fl.SplitItem(proportion=2, content=command),
        fl.SplitItem(proportion=1.2, content=fl.DiagnosticsSummaryPanel(title='Diagnostics'))])
    left = fl.SplitContainer(direction='column', items=images) if images else None
    items = ([fl.SplitItem(proportion=1, content=left)] if left else []) + [
        fl.SplitItem(proportion=1.3, content=right)]
    return fl.Layout(content=fl.SplitContainer(direction='row', items=items))


def write_layout(robot, out, cameras=None, namespace: str = '') -> dict:
    """Write the layout JSON to ``out``; returns the topics it shows."""
    text = foxglove_layout(robot, cameras, namespace).to_json()
    json.loads(text)              # the SDK's output is JSON: fail here, not in Foxglove
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + '\n')
    return layout_topics(robot, cameras, namespace)

r"""Supervised runs for HG-DAgger on a real robot.

The controller, the recorder and a human teleop device whose deadman takes over
(docs/dagger.md).

    ros2 launch il_ros dagger.launch.py checkpoint:=runs/x/checkpoints/best out:=data/bags/r1
    ros2 launch il_ros dagger.launch.py checkpoint:=... teleop_mode:=keyboard \\
        teleop_prefix:='xterm -e'                     # keyboard teleop needs a terminal
    ros2 launch il_ros dagger.launch.py checkpoint:=... trainer:=true   # retrain in the graph
    ros2 launch il_ros dagger.launch.py sim:=true task:=path checkpoint:=... teleop:=false
                                                  # the sim robot and the scripted supervisor

Per episode: ``/recorder/start_episode`` (Trigger), ``/controller/enable`` (SetBool true);
the operator holds the deadman (joy button / keys) to take over, and the controller puts the
teleop command on the robot through its safety filter and labels those ticks
``intervention`` on ``/il/control_source``; then ``/recorder/stop_episode`` (SetBool: success).
``il-ros convert`` labels the frames (intervention, pre_intervention, policy), ``il-ros train
--set weighting=iwr|sirius`` learns from them. ``robot:=NAME`` (or a robot YAML path) sets
every node's robot; the recorder stores that robot's camera, joint-state and command topics
plus the arbitration topics (il_ros/graph_plan.py), and the sim renders the checkpoint's
cameras unless ``cameras:=`` names others. The recorder uses the system clock
(``use_sim_time`` only under ``il-ros dagger`` in the sim). An episode without a takeover is
a complete episode: the takeover topics (and the sim's, on a real robot) may stay silent.

With ``teleop_mode:=joy`` (the default) the launch starts the joystick driver, ``joy_node``
of package ``joy``, when the ament index has it (``ros2 pkg prefix joy``); when not, it warns
once, naming the package and the ``/joy`` topic teleop reads, and no takeover is possible
until some driver publishes ``/joy``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from il_ros.ros.launch_graph import graph_launch_description, joystick_driver


def generate_launch_description():
    sim = {'condition': IfCondition(LaunchConfiguration('sim'))}
    graph = graph_launch_description('dagger', extra_args={
        'sim_robot': sim,
        'supervisor': sim,
        'teleop': {'condition': IfCondition(LaunchConfiguration('teleop')),
                   'prefix': LaunchConfiguration('teleop_prefix')},
        'trainer': {'condition': IfCondition(LaunchConfiguration('trainer'))}})
    return LaunchDescription([
        DeclareLaunchArgument('sim', default_value='false',
                              description='Run the simulated robot and the scripted supervisor '
                                          '(false: a real robot).'),
        DeclareLaunchArgument('teleop', default_value='true',
                              description='Run the human teleop device for takeovers.'),
        # Declared before the graph's own teleop_mode (default scripted): the first
        # declaration sets the default, and a person on a real robot uses a device.
        DeclareLaunchArgument('teleop_mode', default_value='joy',
                              description='Teleop device: joy or keyboard.'),
        DeclareLaunchArgument('teleop_prefix', default_value='',
                              description="Command prefix for teleop, e.g. 'xterm -e' (the "
                                          'keyboard mode reads a terminal).'),
        DeclareLaunchArgument('trainer', default_value='false',
                              description='Run the trainer node (the controller hot-loads its '
                                          'new checkpoints).'),
        graph,
        joystick_driver(condition=IfCondition(LaunchConfiguration('teleop'))),
    ])

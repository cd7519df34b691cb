"""Deploy a policy: the controller node, with the simulated robot and an optional teleop.

    ros2 launch il_ros deploy.launch.py checkpoint:=runs/lift/checkpoints/best task:=lift
    ros2 launch il_ros deploy.launch.py checkpoint:=... enabled:=true teleop:=true teleop_mode:=joy
    ros2 launch il_ros deploy.launch.py checkpoint:=... sim:=false robot:=panda  # a real robot

The sim renders the checkpoint's cameras and the controller runs at the checkpoint's control
rate (read from the checkpoint at launch time; ``cameras:=[front]`` overrides the cameras), as
under ``il-ros deploy``. The controller starts disabled unless ``enabled:=true``:
``ros2 service call /controller/enable std_srvs/srv/SetBool "{data: true}"``. The teleop's
command goes to ``/il/teleop/command``, which only the controller reads (through its safety
filter), never straight to the robot; with ``teleop_mode:=joy`` the joystick driver
(``joy_node`` of package ``joy``) starts too when installed, else a warning says so. The
graph is defined in config/graph.yaml (``deploy``).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from il_ros.ros.launch_graph import graph_launch_description, joystick_driver


def generate_launch_description():
    graph = graph_launch_description('deploy', extra_args={
        'sim_robot': {'condition': IfCondition(LaunchConfiguration('sim'))},
        'teleop': {'condition': IfCondition(LaunchConfiguration('teleop'))}})
    return LaunchDescription([
        DeclareLaunchArgument('sim', default_value='true',
                              description='Run the simulated robot (false: a real robot).'),
        DeclareLaunchArgument('teleop', default_value='false',
                              description='Run teleop for human takeover (with '
                                          'teleop_mode:=joy).'),
        graph,
        joystick_driver(condition=IfCondition(LaunchConfiguration('teleop'))),
    ])

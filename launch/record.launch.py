"""Teleoperate the simulated robot and record episodes into rosbag2.

    ros2 launch il_ros record.launch.py task:=lift episodes:=20 out:=data/bags/lift rtf:=4
    ros2 launch il_ros record.launch.py robot:=panda cameras:=[front,wrist] episodes:=20

The recorder stores the robot's selected cameras (default: its first, front), its joint
states and command, and the teleop label and sim state (il_ros/graph_plan.py).
`episodes:=0` records by service instead: `ros2 service call /recorder/start_episode ...`.
The graph is defined in config/graph.yaml (graph `record`).
"""
from il_ros.ros.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description('record')

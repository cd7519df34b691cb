"""The simulated robot alone: `ros2 launch il_ros sim.launch.py task:=lift rtf:=1`.

`robot:=panda cameras:=[front,wrist]` runs the Panda-like arm with both its cameras.

The graph is defined in config/graph.yaml (graph `sim`).
"""
from il_ros.ros.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description('sim')

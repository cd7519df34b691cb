"""il_ros.sim: ROS-free MuJoCo tasks and scripted experts.

Three tasks on one table-top arm (5 revolute joints, parallel gripper, joint position
control), see docs/sim.md:

- ``lift``: grasp a randomly placed cube and lift it.
- ``reach_around``: reach a target behind a pillar, passing left or right (bimodal).
- ``path``: follow a curved path through five waypoints in order (long horizon).

``make_env(task)`` gives a :class:`SimEnv`, ``make_expert(task, noise=...)`` its scripted
:class:`Expert` (with DART noise on the executed command). Nothing here imports ROS.
"""
from il_ros.render import setup_headless_gl

setup_headless_gl()   # MuJoCo reads MUJOCO_GL when il_ros.sim.env first imports it

from il_ros.sim.env import ARM_JOINTS, FINGER_JOINTS, GRIPPER, SimEnv  # noqa: E402
from il_ros.sim.expert import Expert, ExpertAction  # noqa: E402
from il_ros.sim.registry import make_env, make_expert, TASKS  # noqa: E402

__all__ = ['ARM_JOINTS', 'FINGER_JOINTS', 'GRIPPER', 'Expert', 'ExpertAction', 'SimEnv',
           'TASKS', 'make_env', 'make_expert']

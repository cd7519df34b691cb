"""il_ros.sim: ROS-free MuJoCo tasks and scripted experts.

Three tasks, each on every robot whose description (config/robots/<name>.yaml) names a
scene for it: the package's 5-joint arm ``sim_arm`` (the default) and the Panda-like
7-joint arm ``panda``, both with a parallel gripper under joint position control. See
docs/sim.md:

- ``lift``: grasp a randomly placed cube and lift it.
- ``reach_around``: reach a target behind a pillar, passing left or right (bimodal).
- ``path``: follow a curved path through five waypoints in order (long horizon).

``make_env(task, robot)`` gives a :class:`SimEnv`, ``make_expert(task, robot, noise=...)``
its scripted :class:`Expert` (with DART noise on the executed command). Nothing here
imports ROS.
"""
from il_ros.render import setup_headless_gl

setup_headless_gl()   # MuJoCo reads MUJOCO_GL when il_ros.sim.env first imports it

from il_ros.sim.env import ARM_JOINTS, FINGER_JOINTS, GRIPPER, SimEnv  # noqa: E402
from il_ros.sim.expert import Expert, ExpertAction  # noqa: E402
from il_ros.sim.registry import make_env, make_expert, TASKS  # noqa: E402

__all__ = ['ARM_JOINTS', 'FINGER_JOINTS', 'GRIPPER', 'Expert', 'ExpertAction', 'SimEnv',
           'TASKS', 'make_env', 'make_expert']

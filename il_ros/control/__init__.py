"""il_ros.control (ROS-free): the control loop and its parts.

``loop.ControlLoop`` is the one deployed behaviour; the controller node, in-process
evaluation and the DAgger experiment run it. Its parts: ``worker`` (where the policy runs),
``slot`` (checkpoint check, background load, swap), ``chunk_guard`` (chunk-level safety),
``safety`` (the per-tick filter), ``arbiter`` (human takeover), ``chunks`` (the timed action
queue), ``streams`` (stamp freshness, image formats), ``telemetry``; ``teleop_input`` maps
keyboard and joystick input to commands.
"""

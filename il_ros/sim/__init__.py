"""il_ros.sim (ROS-free)."""

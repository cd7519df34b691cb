"""il_ros.training (ROS-free)."""

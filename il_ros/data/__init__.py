"""il_ros.data (ROS-free)."""

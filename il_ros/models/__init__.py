"""il_ros.models (ROS-free)."""

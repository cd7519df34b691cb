"""il_ros.control (ROS-free)."""

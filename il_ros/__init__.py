"""il_ros: imitation learning for ROS 2 robots.

The core (``data``, ``models``, ``training``, ``control``, ``sim``) never imports rclpy; only
``il_ros.ros`` does. See README.md for the node graph and the two commands.
"""

__version__ = '0.1.0'

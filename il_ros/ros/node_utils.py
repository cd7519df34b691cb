"""Small pieces every il_ros node shares: the main() shutdown form and parameter declaration."""
from __future__ import annotations

import os

os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

import rclpy  # noqa: E402
from rcl_interfaces.msg import ParameterDescriptor  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,  # noqa: E402
                       QoSReliabilityPolicy, qos_profile_sensor_data)

SENSOR_QOS = qos_profile_sensor_data
"""Best effort, keep last 5: camera images and joint states."""

COMMAND_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                         reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.VOLATILE)
"""Reliable with a shallow queue: only the newest command matters."""

STATE_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10,
                       reliability=QoSReliabilityPolicy.RELIABLE,
                       durability=QoSDurabilityPolicy.VOLATILE)
"""Reliable, small queue: low-rate state and status topics."""


_EMPTY_ARRAY_TYPES = {
    'string': Parameter.Type.STRING_ARRAY,
    'double': Parameter.Type.DOUBLE_ARRAY,
    'integer': Parameter.Type.INTEGER_ARRAY,
    'bool': Parameter.Type.BOOL_ARRAY,
}


def declare(node: Node, name: str, default, description: str, read_only: bool = False,
            array_type: str | None = None):
    """Declare one parameter with a description and return its value.

    An empty-list default has no type of its own in rclpy (it would become a byte array),
    so such a parameter names its element type: ``array_type='string'|'double'|...``;
    left unset it reads as ``[]``.
    """
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(default, list) and not default:
        if array_type not in _EMPTY_ARRAY_TYPES:
            raise ValueError(f'parameter {name}: an empty-list default needs array_type, '
                             f'one of {sorted(_EMPTY_ARRAY_TYPES)}')
        value = node.declare_parameter(name, _EMPTY_ARRAY_TYPES[array_type], desc).value
        return [] if value is None else list(value)
    return node.declare_parameter(name, default, desc).value


def run(node_factory, args=None) -> None:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, then clean up.

    Uses the shutdown form that works on Humble, Jazzy and Kilted alike.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down between callbacks or inside one; a publish that then
        # fails is part of shutting down, not an error. Anything else is re-raised.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()

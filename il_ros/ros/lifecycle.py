"""What the managed (lifecycle) nodes share: the controller and the recorder.

Both are lifecycle nodes (``rclpy.lifecycle.LifecycleNode``) with the standard states
(unconfigured, inactive, active, finalized) and services (``~/change_state``,
``~/get_state``, ...). With the ``autostart`` parameter (read-only, default true) a node
configures and activates itself at start-up, so ``il-ros`` commands, which start it as a
plain node, get an active node as before; ``autostart:=false`` leaves it unconfigured for a
lifecycle manager (``ros2 lifecycle set /controller configure``; the launch files drive it
with ChangeState events, il_ros/ros/launch_graph.py).
A transition that cannot be done returns FAILURE with one logged line naming the parameter
or file, and the node stays where it was.
After the shutdown transition the node's process exits (:func:`end_after_shutdown`).
"""
from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
AUTOSTART = ('Configure and activate at start-up (true: what il-ros uses). false: start '
             'unconfigured and wait for lifecycle transitions (~/change_state; ros2 '
             'lifecycle set NODE configure; the launch files send them).')
"""The ``autostart`` parameter's description (both nodes)."""


def autostart(node: LifecycleNode) -> bool:
    """Configure, then activate ``node``; True when it is active.

    A transition that fails has logged why; the node stays unconfigured (or inactive).
    """
    if node.trigger_configure() != SUCCESS:
        return False
    return node.trigger_activate() == SUCCESS


def end_after_shutdown(node: LifecycleNode, end) -> None:
    """Call ``end()`` once the shutdown transition has been answered (a one-shot timer).

    ``end`` ends the node's spin (the recorder's ``done`` future, or the context's
    shutdown); the process then exits 0, as after Ctrl-C.
    """
    timer = None

    def fire():
        node.destroy_timer(timer)
        end()
    timer = node.create_timer(0.05, fire)


def failed(node: LifecycleNode, transition: str, why: str) -> TransitionCallbackReturn:
    """Log why ``transition`` failed (one error line) and return FAILURE."""
    node.get_logger().error(f'{transition} failed: {why}')
    return FAILURE

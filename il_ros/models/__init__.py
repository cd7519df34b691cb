"""il_ros.models (ROS-free): encoders, history cores, action heads and the Policy.

See docs/models.md. The public API::

    from il_ros.models import (PolicyConfig, RobotSpec, Policy, build_policy,
                               save_checkpoint, load_checkpoint, CheckpointMismatch, preset)
"""
from il_ros.models.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from il_ros.models.policy import assemble_policy, build_policy, Policy
from il_ros.models.policy_config import PolicyConfig, RobotSpec
from il_ros.models.presets import preset, preset_names

__all__ = ['CheckpointMismatch', 'Policy', 'PolicyConfig', 'RobotSpec', 'assemble_policy',
           'build_policy', 'load_checkpoint', 'preset', 'preset_names', 'save_checkpoint']

"""il_ros.models (ROS-free): encoders, history cores, action heads and the Policy.

See docs/models.md. Modules: ``policy`` (the Policy, which receives its parts), ``builders``
(parts from the registry, normalizers from stats), ``checkpoint`` (save/load; it uses the
builders), ``policy_config``, ``presets``, ``registry``. The public API::

    from il_ros.models import (PolicyConfig, RobotSpec, Policy, build_policy,
                               save_checkpoint, load_checkpoint, CheckpointMismatch, preset)
"""
# The built-in components first: importing them registers them (see registry).
from il_ros.models import cores, encoders, heads  # noqa: F401 - registers them
from il_ros.models.builders import assemble_policy, build_policy
from il_ros.models.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from il_ros.models.policy import Policy
from il_ros.models.policy_config import PolicyConfig, RobotSpec
from il_ros.models.presets import preset, preset_names

__all__ = ['CheckpointMismatch', 'Policy', 'PolicyConfig', 'RobotSpec', 'assemble_policy',
           'build_policy', 'load_checkpoint', 'preset', 'preset_names', 'save_checkpoint']

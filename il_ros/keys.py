"""Names shared across the package: observation keys, default topics and services.

Every module takes its names from here, so that a rename happens in one place.
"""

# Observation dict keys (in-process sim API, dataset, policy).
OBS_JOINT_POS = 'joint_pos'          # (J,) float64, joint positions in JOINT_STATE order
OBS_JOINT_VEL = 'joint_vel'          # (J,) float64
OBS_IMAGE_PREFIX = 'image/'          # 'image/<camera>' -> (H, W, 3) uint8 RGB
ACTION = 'action'                    # (A,) float64, joint position targets + gripper


def image_key(camera: str) -> str:
    """Observation key of a camera's image."""
    return OBS_IMAGE_PREFIX + camera


# Default topics and services of the node graph (all remappable). Relative names resolve in
# the node's namespace (/robot1/joint_states under /robot1; /joint_states without one);
# /clock is global, as ROS convention has it (docs/ros-network.md, "Names and namespaces").
TOPIC_COMMAND = 'il/command'
TOPIC_TELEOP_COMMAND = 'il/teleop/command'
TOPIC_INTERVENTION = 'il/intervention'
TOPIC_CONTROL_SOURCE = 'il/control_source'
TOPIC_JOINT_STATES = 'joint_states'
TOPIC_SIM_STATE = 'sim/state'
TOPIC_SIM_SUCCESS = 'sim/success'
TOPIC_CLOCK = '/clock'
SERVICE_SIM_RESET = 'sim/reset'


def normalize_namespace(text) -> str:
    """A ROS namespace as an absolute one (``robot1`` -> ``/robot1``; '' or '/' -> '').

    Raises ValueError unless every token is a ROS name token (letters, digits, ``_``; not
    starting with a digit).
    """
    text = '' if text is None else str(text).strip()
    if text in ('', '/', "''", '""'):
        return ''
    tokens = text.strip('/').split('/')
    if not all(t and t.isascii() and (t[0].isalpha() or t[0] == '_')
               and t.replace('_', 'a').isalnum() for t in tokens):
        raise ValueError(f'{text!r} is not a ROS namespace (name tokens of letters, digits '
                         'and _ separated by /, e.g. robot1)')
    return '/' + '/'.join(tokens)


def resolve_name(name: str, namespace: str = '/') -> str:
    """A topic or service name resolved as ROS resolves it for a node in ``namespace``.

    An absolute name (leading '/') stays as it is; a relative one is put under the namespace
    ('/' by default: ``joint_states`` -> ``/joint_states``). For the ROS-free code that
    meets resolved names (bags store them); a node resolves with
    ``node.resolve_topic_name``. Private names (``~``) are a node's own and are refused here.
    """
    name = str(name)
    if name.startswith('~'):
        raise ValueError(f'{name!r}: a private name resolves only in a node')
    if name.startswith('/'):
        return name
    ns = '/' + str(namespace or '/').strip('/')
    return f'{ns.rstrip("/")}/{name}'


EPISODE_TAG = 'episode/'
"""A command whose first layout dimension is labelled ``episode/<k>`` answers a /sim/state of
sim episode k; the scripted teleop tags its commands so, and sim_robot drops one that arrives
after it reset to another episode. Untagged commands (any other controller) always apply."""


def camera_topic(camera: str) -> str:
    """Default image topic of a camera."""
    return f'camera/{camera}/image_raw'


# Control-source labels (published on TOPIC_CONTROL_SOURCE, stored per frame).
SOURCE_DEMO = 'demo'
SOURCE_POLICY = 'policy'
SOURCE_INTERVENTION = 'intervention'
SOURCE_HOLD = 'hold'
SOURCE_PRE_INTERVENTION = 'pre_intervention'
TOPIC_SOURCES = (SOURCE_DEMO, SOURCE_POLICY, SOURCE_INTERVENTION, SOURCE_HOLD)
"""The values il/control_source may carry (a recording without the topic is all demo)."""
LABEL_NAMES = (SOURCE_DEMO, SOURCE_POLICY, SOURCE_INTERVENTION, SOURCE_PRE_INTERVENTION,
               SOURCE_HOLD)
"""Per-frame dataset labels; a label's index here is its uint8 code in the store.
``pre_intervention`` is derived at conversion: the policy frames just before a takeover."""


EVAL_SEED = 1000
"""Evaluation episodes use env seeds from here up; demonstrations are recorded from seed 0,
so a policy is never evaluated on the initial conditions it was trained on (up to 1000
demos)."""


# Policy checkpoints: a folder holding these files (il_ros.models.checkpoint writes them).
CHECKPOINT_CONFIG_FILE = 'policy.json'
"""The checkpoint's JSON description (format, config, spec, normalizers, extra); its
presence marks a folder as a checkpoint, and it is written last."""
CHECKPOINT_MODEL_FILE = 'model.safetensors'
"""The policy's state dict (safetensors; pickle is never loaded)."""
CHECKPOINT_EMA_FILE = 'ema.safetensors'
"""Optional EMA weights (the same keys as the model's, or a subset)."""

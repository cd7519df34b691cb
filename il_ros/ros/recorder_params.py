"""The recorder's parameters: one table the node declares (see il_ros/ros/recorder.py)."""
from __future__ import annotations

import math

from il_ros.data.episode_writer import STORAGES
from il_ros.keys import SERVICE_SIM_RESET, TOPIC_SIM_SUCCESS
from il_ros.ros.lifecycle import AUTOSTART
from il_ros.ros.node_utils import ParameterError

EXCLUDED_TOPICS = ('/rosout', '/parameter_events')
_POS = {'min': 0.0, 'min_exclusive': True}
PARAMS = {  # name: (default, description, limits)
    'topics': ([], 'Topics to record; empty: every topic discovered (re-discovered '
               'periodically) except /rosout and /parameter_events.', {}),
    'optional_topics': ([], 'Topics of `topics` that may send nothing in an episode (the '
                        'takeover topics of the dagger graph): recorded when they publish; '
                        'the others are expected: silent, they make it incomplete.', {}),
    'output_dir': ('episodes', 'Folder of episode bags (episode_NNNN/) and their JSON.', {}),
    'storage': ('mcap', 'Bag storage: mcap (default; a crash leaves the 1 MB chunks written '
                'so far on disk) or sqlite3 (commits only when the episode stops).',
                {'choices': sorted(STORAGES)}),
    'task': ('', 'Task name stored in each episode\'s metadata.', {}),
    'operator': ('', 'Operator name stored in each episode\'s metadata.', {}),
    'queue_size': (1000, 'Messages the writer queue holds; when full, messages are dropped '
                   'and counted (never blocks the callbacks).', {'min': 1}),
    'expected_topics_timeout_s': (5.0, 'A configured topic without a message this long after '
                                  'the start is warned about; with none by the stop the '
                                  'episode is incomplete.', _POS),
    'expected_rates': ([], 'Expected publication rates as TOPIC=HZ strings; the loss of the '
                       'other header-stamped topics is estimated from their stamps.', {}),
    'max_loss_fraction': (0.01, 'An episode whose topic lost more than this fraction of its '
                          'messages is complete_with_loss.', {'min': 0.0, 'max': 1.0}),
    'discovery_period_s': (1.0, 'Seconds between topic discovery passes.', _POS),
    'auto_episodes': (0, 'Episodes to record automatically (reset, record, stop on success '
                      'or timeout), then exit 0; 0 = manual (services).', {'min': 0}),
    'reset_service': (SERVICE_SIM_RESET, 'Trigger service called before each auto episode.',
                      {}),
    'reset_timeout_s': (30.0, 'Wall seconds to wait for the reset service (auto mode).', _POS),
    'success_topic': (TOPIC_SIM_SUCCESS, 'std_msgs/Bool topic that signals success (auto).',
                      {}),
    'success_hold_s': (0.5, 'Node-clock seconds recorded after success turns true (auto).',
                       {'min': 0.0}),
    'episode_timeout_s': (30.0, 'Node-clock seconds before an auto episode stops as a '
                          'failure.', _POS),
}
READ_ONLY = {  # name: (default, description); fixed at start-up
    'output_root': ('', 'output_dir may only be set (at start-up or later) to this folder or '
                    'below it; empty: the start-up output_dir.'),
    'allow_any_output_dir': (False, 'Let output_dir be set to any folder (no output_root).'),
    'autostart': (True, AUTOSTART),
}
START_UP = ('topics', 'optional_topics', 'discovery_period_s', 'auto_episodes', 'reset_service',
            'success_topic')
"""PARAMS the node reads at start-up only (subscriptions, timers): read-only."""


def parse_rates(name: str, items, resolve=str) -> dict[str, float]:
    """``{resolve(topic): Hz}`` from ``TOPIC=HZ``; raises ParameterError naming the bad one."""
    out = {}
    for item in items or []:
        topic, sep, hz = str(item).rpartition('=')
        try:
            rate = float(hz)
        except ValueError:
            rate = math.nan
        if not sep or not topic or not math.isfinite(rate) or rate <= 0:
            raise ParameterError(f'parameter {name}={list(items)!r}: {item!r} must be '
                                 'TOPIC=HZ with a topic name and HZ > 0')
        out[resolve(topic)] = rate
    return out

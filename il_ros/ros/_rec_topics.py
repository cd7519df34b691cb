"""Recorder helpers: message classes from type strings, QoS matched to publishers, typestore.

Kept apart from the node so that the node file stays about callbacks and services.
"""
from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import sys
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

# KEEP_ALL: a reader's KEEP_LAST history silently replaces samples the executor has not taken
# yet (measured: hundreds of 500 Hz joint states lost per 10 s while 640x480 images flowed on
# a busy 2-core machine, with no message_lost event). KEEP_ALL readers never replace; a
# KEEP_LAST publisher (the ROS default) is not slowed down by them. The depth only matters
# where a middleware ignores KEEP_ALL.
SUBSCRIPTION_DEPTH = 1000
_STORES = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY,
           'kilted': Stores.ROS2_KILTED}


def msg_class(msgtype: str):
    """The Python message class of ``pkg/msg/Name``; raises ValueError for anything else.

    ``msgtype`` comes from the remote graph, so it is checked before anything is imported:
    ``pkg`` and ``Name`` must be plain identifiers, the middle part ``msg``, and ``pkg`` an
    installed ROS interface package (a Python package with a ``msg`` sub-package and
    rosidl-generated type support, found without importing it). The class found must be a
    rosidl-generated message. So ``../msg/X`` or ``os/msg/X`` never reach an import.
    """
    parts = msgtype.split('/') if isinstance(msgtype, str) else []
    if len(parts) != 3 or parts[1] != 'msg':
        raise ValueError(f'message type {msgtype!r} is not of the form pkg/msg/Name')
    pkg, _, name = parts
    for part in (pkg, name):
        if not part.isidentifier() or keyword.iskeyword(part) or part.startswith('_'):
            raise ValueError(f'message type {msgtype!r}: {part!r} is not a valid name')
    if not is_interface_package(pkg):
        raise ValueError(f'message type {msgtype!r}: {pkg!r} is not an installed ROS '
                         'interface package')
    module = importlib.import_module(f'{pkg}.msg')
    cls = getattr(module, name, None)
    if not isinstance(cls, type) or not hasattr(type(cls), '__import_type_support__') \
            or not hasattr(cls, 'get_fields_and_field_types'):
        raise ValueError(f'message type {msgtype!r}: {pkg}.msg has no message {name}')
    return cls


def is_interface_package(pkg: str) -> bool:
    """True if ``pkg`` is an installed rosidl-generated Python package (not imported)."""
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    for root in map(Path, spec.submodule_search_locations):
        if (root / 'msg' / '__init__.py').is_file() and any(
                root.glob(f'{pkg}_s__rosidl_typesupport_*')):
            return True
    return False


def subscription_qos(endpoints) -> QoSProfile:
    """A subscription QoS that matches every publisher in ``endpoints``.

    Reliable only if all publishers are reliable, transient-local only if all are. With no
    publisher information it is sensor-data QoS (best effort, volatile). History is
    KEEP_ALL, so that fast topics survive executor stalls (see SUBSCRIPTION_DEPTH).
    """
    pubs = [e.qos_profile for e in endpoints]
    reliable = bool(pubs) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in pubs)
    latched = bool(pubs) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                 for q in pubs)
    return QoSProfile(
        history=HistoryPolicy.KEEP_ALL, depth=SUBSCRIPTION_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))


def needs_resubscribe(current: QoSProfile, wanted: QoSProfile) -> bool:
    """True if a subscription with ``current`` QoS cannot match a publisher ``wanted`` fits."""
    return ((current.reliability == ReliabilityPolicy.RELIABLE
             and wanted.reliability != ReliabilityPolicy.RELIABLE)
            or (current.durability == DurabilityPolicy.TRANSIENT_LOCAL
                and wanted.durability != DurabilityPolicy.TRANSIENT_LOCAL))


def _qos_time(duration) -> QosTime:
    ns = int(duration.nanoseconds)
    if ns <= 0 or ns >= 2**63 - 1:  # "default"/"infinite": rosbag2's infinite marker
        return QosTime(sec=2147483647, nsec=4294967295) if ns > 0 else QosTime(sec=0, nsec=0)
    return QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


def bag_qos(endpoints) -> list[Qos]:
    """The publishers' QoS as rosbags ``Qos`` (stored as ``offered_qos_profiles``)."""
    out = []
    for e in endpoints:
        q = e.qos_profile
        out.append(Qos(
            history=QosHistory(int(q.history)), depth=int(q.depth),
            reliability=QosReliability(int(q.reliability)),
            durability=QosDurability(int(q.durability)),
            deadline=_qos_time(q.deadline), lifespan=_qos_time(q.lifespan),
            liveliness=QosLiveliness(int(q.liveliness)),
            liveliness_lease_duration=_qos_time(q.liveliness_lease_duration),
            avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions)))
    return out


def typestore_for_distro(distro: str | None = None):
    """The rosbags typestore of ``$ROS_DISTRO`` (Kilted, the wheels' distro, by default)."""
    distro = (distro or os.environ.get('ROS_DISTRO') or 'kilted').lower()
    return get_typestore(_STORES.get(distro, Stores.ROS2_KILTED))


def _share_dirs() -> list[Path]:
    roots = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    roots.append(sys.prefix)
    return [Path(r) / 'share' for r in roots]


def ensure_type(typestore, msgtype: str, _depth: int = 0) -> bool:
    """Make sure ``typestore`` knows ``msgtype``, reading its ``.msg`` from ament share dirs.

    Returns False when no definition was found (the topic cannot be written to a bag).
    """
    if msgtype in typestore.fielddefs:
        return True
    if _depth > 20:
        return False
    pkg, sub, name = msgtype.split('/')
    for share in _share_dirs():
        path = share / pkg / sub / f'{name}.msg'
        if path.is_file():
            types = get_types_from_msg(path.read_text(), msgtype)
            deps = _referenced(types[msgtype][1])
            if all(ensure_type(typestore, d, _depth + 1) for d in deps):
                typestore.register(types)
                return True
            return False
    return False


def _referenced(fields) -> set[str]:
    """Type names referenced by a rosbags field list (nested arrays/sequences included)."""
    out = set()

    def walk(node):
        if isinstance(node, str) and node.count('/') == 2:
            out.add(node)
        elif isinstance(node, tuple):
            for x in node:
                walk(x)

    for _, desc in fields:
        walk(desc)
    return out

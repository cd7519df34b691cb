"""The bags il_ros writes pass the metadata readers of Humble, Jazzy and Kilted.

``RULES`` below is each distribution's rosbag2 metadata decoder written down as data: the
fields it reads from ``metadata.yaml`` (and, on Jazzy and Kilted, from the copy embedded in
the MCAP file or the sqlite3 database), from which metadata version on, and the yaml-cpp
conversion (``as<T>()``) each goes through. A field that is missing or does not convert makes
the reader throw ``bad conversion`` and the bag unreadable. The QoS profiles inside
``offered_qos_profiles`` are checked as the distribution's QoS decoder reads them (on Humble
at playback, on Jazzy and Kilted when the metadata is read).

How the rules were derived (github ros2/rosbag2, fetched snapshot):

- humble, branch ``humble`` at d256a5bad515 (2024-10-02):
  ``rosbag2_storage/src/rosbag2_storage/metadata_io.cpp`` (``convert<BagMetadata>``,
  ``convert<TopicMetadata>``, ``convert<FileInformation>``), and
  ``rosbag2_transport/src/rosbag2_transport/qos.cpp`` (``convert<Rosbag2QoS>::decode``,
  called on the ``offered_qos_profiles`` string by ``player.cpp``). Humble's reader never
  compares the version number: it reads ``offered_qos_profiles`` as a string for every
  version >= 4, so version 9, where it became a YAML list (ros2/rosbag2#1476), fails with
  "bad conversion" (ros2/rosbag2#2013). Its MCAP plugin does not read the embedded copy.
- jazzy, branch ``jazzy`` at 64717ee802a2 (2024-10-16):
  ``rosbag2_storage/include/rosbag2_storage/yaml.hpp`` (the decoders, now with
  ``custom_data`` from 6, ``type_description_hash`` from 7, ``ros_distro`` from 8, the QoS
  list from 9) and ``rosbag2_storage/src/rosbag2_storage/qos.cpp``
  (``convert<rclcpp::QoS>::decode``: enums as integers when ``history`` is an integer,
  else as names; ``depth`` only for keep_last). ``rosbag2_storage_mcap/src/mcap_storage.cpp``
  and ``rosbag2_storage_sqlite3/src/.../sqlite_storage.cpp`` decode the embedded copy too.
- kilted: the snapshot has no ``kilted`` branch; its newest source is ``rolling`` at
  25304dd36e51 (0.29.0, 2024-10-16; Kilted, 0.32, was branched from rolling later), whose
  three files above are identical to jazzy's. Kilted's published API reference lists the
  same converters, and rosbags 0.11.9, which reads Kilted's bags, knows no version above 9.

Checks are at least as strict as yaml-cpp (integers must be decimal, a null is not taken as
the string "null").
"""
from __future__ import annotations

import json
from pathlib import Path
import re
import sqlite3
import struct

import numpy as np
import pytest
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores
import yaml

from il_ros.data.bag_recover import recover_bag
from il_ros.data.episode_writer import DEFAULT_BAG_VERSION, EpisodeWriter
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag
from test_node_parameters import exit_2_line  # noqa: I100

TS = get_typestore(Stores.ROS2_KILTED)

# ---- the rules, per distribution -----------------------------------------------------------
# 'fields': (from_version, path, yaml-cpp type) read from rosbag2_bagfile_information;
# 'topic' / 'file': the same for each item of topics_with_message_count / files;
# 'qos_list': the form of offered_qos_profiles from each version on ('string': a YAML text
#   holding the list, '' for none; 'sequence': the list itself);
# 'qos_enums': 'int' (history, reliability, durability, liveliness as integers) or
#   'int_or_name' (integers when history is an integer, else names);
# 'max_version': the newest metadata layout the decoder parses;
# 'embedded': whether the storage plugins decode the copy inside the MCAP / sqlite3 file.
_BASE = (
    (1, 'version', 'int'), (1, 'storage_identifier', 'string'),
    (1, 'duration.nanoseconds', 'uint64'),
    (1, 'starting_time.nanoseconds_since_epoch', 'uint64'), (1, 'message_count', 'uint64'),
    (1, 'topics_with_message_count', 'sequence'), (1, 'relative_file_paths', 'string_list'),
    (3, 'compression_format', 'string'), (3, 'compression_mode', 'string'),
    (5, 'files', 'sequence'))
_TOPIC = ((1, 'topic_metadata.name', 'string'), (1, 'topic_metadata.type', 'string'),
          (1, 'topic_metadata.serialization_format', 'string'), (1, 'message_count', 'uint64'))
_FILE = ((5, 'path', 'string'), (5, 'starting_time.nanoseconds_since_epoch', 'uint64'),
         (5, 'duration.nanoseconds', 'uint64'), (5, 'message_count', 'uint64'))
RULES = {
    # humble @ d256a5b: rosbag2_storage/src/rosbag2_storage/metadata_io.cpp,
    # rosbag2_transport/src/rosbag2_transport/qos.cpp
    'humble': {'fields': _BASE, 'topic': _TOPIC, 'file': _FILE,
               'qos_list': {4: 'string'}, 'qos_enums': 'int', 'max_version': 8,
               'embedded': False},
    # jazzy @ 64717ee: rosbag2_storage/include/rosbag2_storage/yaml.hpp,
    # rosbag2_storage/src/rosbag2_storage/qos.cpp
    'jazzy': {'fields': _BASE + ((6, 'custom_data', 'string_map'), (8, 'ros_distro', 'string')),
              'topic': _TOPIC + ((7, 'topic_metadata.type_description_hash', 'string'),),
              'file': _FILE, 'qos_list': {4: 'string', 9: 'sequence'},
              'qos_enums': 'int_or_name', 'max_version': 9, 'embedded': True},
}
# kilted: rolling @ 25304dd (0.29.0), the same files, identical to jazzy's
RULES['kilted'] = dict(RULES['jazzy'])

_NULLS = {'~', 'null', 'Null', 'NULL', ''}
_BOOLS = {f(w) for w in ('y', 'n', 'yes', 'no', 'true', 'false', 'on', 'off')
          for f in (str.lower, str.capitalize, str.upper)}
_INTS = {'int': (r'[-+]?[0-9]+', -2**31, 2**31 - 1), 'uint64': (r'\+?[0-9]+', 0, 2**64 - 1)}


def _get(node, path: str):
    """``node[a][b]...`` as yaml-cpp looks it up; None where a key is missing."""
    for key in path.split('.'):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if getattr(k, 'value', None) == key), None)
    return node


def _is_null(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULLS


def _scalar(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and not _is_null(node)


def _conversion_error(node, typ: str) -> str | None:
    """Why yaml-cpp's ``as<typ>()`` fails on ``node`` (None: it converts)."""
    if node is None:
        return 'missing'
    what = ('a sequence' if isinstance(node, yaml.SequenceNode) else 'a map'
            if isinstance(node, yaml.MappingNode) else 'null' if _is_null(node)
            else repr(node.value))
    if typ == 'string':
        ok = _scalar(node)
    elif typ in _INTS:
        pattern, low, high = _INTS[typ]
        ok = _scalar(node) and re.fullmatch(pattern, node.value) is not None and \
            low <= int(node.value) <= high
    elif typ == 'bool':
        ok = _scalar(node) and node.value in _BOOLS
    elif typ == 'sequence':
        ok = isinstance(node, yaml.SequenceNode)
    elif typ == 'string_list':
        ok = isinstance(node, yaml.SequenceNode) and all(_scalar(x) for x in node.value)
    elif typ == 'string_map':   # the custom_data decoder iterates: null is an empty map
        ok = _is_null(node) or isinstance(node, yaml.MappingNode) and all(
            _scalar(k) and _scalar(v) for k, v in node.value)
    else:
        raise ValueError(typ)
    return None if ok else f'{what} does not convert to {typ}'


def _check(node, rules, version: int, where: str, out: list[str]) -> None:
    for since, path, typ in rules:
        if version >= since:
            err = _conversion_error(_get(node, path), typ)
            if err:
                out.append(f'{where}{path}: {err}')


def _qos_problems(profiles, enums: str, where: str) -> list[str]:
    """What the distribution's QoS decoder refuses in a list of profiles."""
    if not isinstance(profiles, yaml.SequenceNode):
        return [f'{where}: not a list of QoS profiles']
    out = []
    for i, p in enumerate(profiles.value):
        at = f'{where}[{i}].'
        history = _get(p, 'history')
        as_int = enums == 'int' or (
            _conversion_error(history, 'int') is None and 0 <= int(history.value) <= 3)
        enum_type = 'int' if as_int else 'string'
        keep_last = history is not None and history.value in ('1', 'keep_last')
        rules = [(0, name, enum_type) for name in
                 ('history', 'reliability', 'durability', 'liveliness')]
        if enums == 'int' or keep_last:
            rules.append((0, 'depth', 'int'))
        for name in ('deadline', 'lifespan', 'liveliness_lease_duration'):
            rules += [(0, f'{name}.sec', 'uint64'), (0, f'{name}.nsec', 'uint64')]
        rules.append((0, 'avoid_ros_namespace_conventions', 'bool'))
        _check(p, rules, 0, at, out)
    return out


def metadata_problems(text: str, distro: str, wrapped: bool = True) -> list[str]:
    """Everything ``distro``'s metadata reader would refuse in ``text`` (empty: it reads it).

    ``wrapped``: ``text`` is a ``metadata.yaml`` (under ``rosbag2_bagfile_information``),
    else the bare mapping embedded in an MCAP or sqlite3 file.
    """
    rules = RULES[distro]
    root = yaml.compose(text)
    if wrapped:
        root = _get(root, 'rosbag2_bagfile_information')
        if root is None:
            return ['rosbag2_bagfile_information: missing']
    err = _conversion_error(_get(root, 'version'), 'int')
    if err:
        return [f'version: {err}']
    version = int(_get(root, 'version').value)
    out = [] if version <= rules['max_version'] else [
        f'version: {version} is newer than the {rules["max_version"]} {distro} reads']
    _check(root, rules['fields'], version, '', out)
    qos_form = max(((v, f) for v, f in rules['qos_list'].items() if version >= v),
                   default=(0, None))[1]
    for i, topic in enumerate(getattr(_get(root, 'topics_with_message_count'), 'value', [])):
        where = f'topics_with_message_count[{i}].'
        _check(topic, rules['topic'], version, where, out)
        qos = _get(topic, 'topic_metadata.offered_qos_profiles')
        where += 'topic_metadata.offered_qos_profiles'
        if qos_form is None:
            continue
        err = _conversion_error(qos, qos_form)
        if err:
            out.append(f'{where}: {err}')
        elif qos_form == 'sequence':
            out += _qos_problems(qos, rules['qos_enums'], where)
        elif qos.value:
            out += _qos_problems(yaml.compose(qos.value), rules['qos_enums'], where)
    for i, item in enumerate(getattr(_get(root, 'files'), 'value', [])):
        _check(item, rules['file'], version, f'files[{i}].', out)
    return out


def embedded_metadata(bag: Path) -> str | None:
    """The metadata copy inside the bag's MCAP (``rosbag2`` metadata record) or sqlite3 file."""
    for db in bag.glob('*.db3'):
        with sqlite3.connect(db) as con:
            return con.execute('SELECT metadata FROM metadata ORDER BY id DESC').fetchone()[0]
    data = next(bag.glob('*.mcap')).read_bytes()
    pos = 8                                      # after the magic
    while pos + 9 <= len(data):
        op, size = struct.unpack_from('<BQ', data, pos)
        body, pos = data[pos + 9:pos + 9 + size], pos + 9 + size
        if op != 0x0C:                           # Metadata record: name, map<string, string>
            continue
        strings, at = [], 0
        (n,) = struct.unpack_from('<I', body, at)
        name, at = body[4:4 + n].decode(), 4 + n + 4     # + the map's byte length
        while at < len(body):
            (n,) = struct.unpack_from('<I', body, at)
            strings.append(body[at + 4:at + 4 + n].decode())
            at += 4 + n
        if name == 'rosbag2':
            return dict(zip(strings[::2], strings[1::2]))['serialized_metadata']
    return None


def bag_problems(bag: Path, distro: str) -> list[str]:
    """What ``distro`` refuses in the bag's ``metadata.yaml`` and (if it reads it) its copy."""
    out = metadata_problems((Path(bag) / 'metadata.yaml').read_text(), distro)
    if RULES[distro]['embedded']:
        embedded = embedded_metadata(Path(bag))
        if embedded is None:
            out.append('no embedded metadata')
        else:
            out += [f'embedded {p}' for p in metadata_problems(embedded, distro, False)]
    return out


def assert_every_distro_reads(bag) -> None:
    """Assert that Humble's, Jazzy's and Kilted's metadata readers accept ``bag``."""
    problems = {d: bag_problems(Path(bag), d) for d in RULES}
    assert not any(problems.values()), f'{bag}: {problems}'


# ---- the bags the recorder writes ----------------------------------------------------------

INFINITE = QosTime(9223372036, 854775807)        # what rclpy reports for "no deadline"
QOS = [Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
           INFINITE, INFINITE, QosLiveliness.AUTOMATIC, INFINITE, False),
       Qos(QosHistory.KEEP_ALL, 0, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
           QosTime(0, 0), QosTime(1, 500), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)]


def _record(out, **kwargs) -> Path:
    """One finished episode written as the recorder writes it: 2 topics, one with 2 QoS."""
    ep = EpisodeWriter.open(out, typestore=TS, **kwargs)
    ep.add_topic('/js', 'sensor_msgs/msg/JointState', QOS)
    ep.add_topic('/flag', 'std_msgs/msg/Bool')
    js = TS.types['sensor_msgs/msg/JointState']
    hdr = TS.types['std_msgs/msg/Header']
    stamp = TS.types['builtin_interfaces/msg/Time']
    for i in range(5):
        msg = js(header=hdr(stamp=stamp(sec=1, nanosec=i), frame_id=''), name=['a'],
                 position=np.array([float(i)]), velocity=np.zeros(0), effort=np.zeros(0))
        ep.write('/js', bytes(TS.serialize_cdr(msg, js.__msgtype__)), 1_000_000_000 + i)
    flag = TS.types['std_msgs/msg/Bool'](data=True)
    ep.write('/flag', bytes(TS.serialize_cdr(flag, 'std_msgs/msg/Bool')), 1_000_000_010)
    assert ep.finish(True, 1_000_000_020)['status'] == 'complete'
    return ep.bag_path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_recorder_bags_are_version_8_and_every_distribution_reads_them(tmp_path, storage):
    bag = _record(tmp_path, storage=storage)
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert DEFAULT_BAG_VERSION == meta['version'] == 8
    assert json.loads(bag.with_suffix('.json').read_text())['bag_version'] == 8
    qos = {t['topic_metadata']['name']: t['topic_metadata']['offered_qos_profiles']
           for t in meta['topics_with_message_count']}
    assert isinstance(qos['/js'], str) and qos['/flag'] == ''   # version 8: YAML in a string
    assert yaml.safe_load(qos['/js'])[0]['reliability'] == 1      # enums as integers
    assert_every_distro_reads(bag)
    with Reader(bag) as reader:                  # our readers (rosbags) read it back whole
        conns = {c.topic: c for c in reader.connections}
        assert conns['/js'].ext.offered_qos_profiles == QOS
        assert conns['/js'].digest.startswith('RIHS01_')
        assert sum(1 for _ in reader.messages()) == 6


def test_version_9_fails_humble_only(tmp_path):
    """A version-9 bag: Humble's as<std::string> on the QoS list fails; Jazzy, Kilted read it."""
    synthetic = write_synthetic_bag(tmp_path / 'syn', SyntheticBagSpec(duration=0.3,
                                                                       bag_version=9))
    recorded = _record(tmp_path / 'rec', bag_version=9)
    for bag in (synthetic, recorded):
        humble = bag_problems(bag, 'humble')
        assert humble, 'the Humble rules accept a version-9 bag'
        assert any(p.startswith('topics_with_message_count[0].topic_metadata.'
                                'offered_qos_profiles: a sequence does not convert to string')
                   for p in humble), humble
        assert not bag_problems(bag, 'jazzy') and not bag_problems(bag, 'kilted')
    assert_every_distro_reads(write_synthetic_bag(tmp_path / 'syn8',
                                                  SyntheticBagSpec(duration=0.3)))


V8 = """rosbag2_bagfile_information:
  version: 8
  storage_identifier: mcap
  duration: {nanoseconds: 5}
  starting_time: {nanoseconds_since_epoch: 1}
  message_count: 1
  relative_file_paths: [a.mcap]
  compression_format: ''
  compression_mode: ''
  files: [{path: a.mcap, starting_time: {nanoseconds_since_epoch: 1},
           duration: {nanoseconds: 5}, message_count: 1}]
  custom_data: null
  ros_distro: rosbags
  topics_with_message_count:
  - message_count: 1
    topic_metadata: {name: /a, type: std_msgs/msg/Bool, serialization_format: cdr,
                     type_description_hash: RIHS01_x, offered_qos_profiles: %s}
"""
QOS8 = (r'"- history: 1\n  depth: 10\n  reliability: 1\n  durability: 2\n  deadline: {sec: 0,'
        r' nsec: 0}\n  lifespan: {sec: 0, nsec: 0}\n  liveliness: 1\n  liveliness_lease_'
        r'duration: {sec: 0, nsec: 0}\n  avoid_ros_namespace_conventions: false"')


@pytest.mark.parametrize('change, refused_by', [
    (('', ''), set()),
    (('  ros_distro: rosbags\n', ''), {'jazzy', 'kilted'}),              # read from 8
    (('custom_data: null', 'custom_data: [a]'), {'jazzy', 'kilted'}),    # from 6: a map
    (('type_description_hash: RIHS01_x, ', ''), {'jazzy', 'kilted'}),    # from 7
    (('nanoseconds: 5}\n  start', 'nanoseconds: -5}\n  start'), set(RULES)),  # uint64
    (('  compression_mode: \'\'\n', ''), set(RULES)),                    # from 3
    (('history: 1', 'history: keep_last'), {'humble'}),     # names, as in Jazzy's version 9
    (('reliability: 1', 'reliability: reliable'), set(RULES)),  # Jazzy: ints, as history is
    (('depth: 10', 'depth: ten'), set(RULES)),
    (('version: 8', 'version: 9'), set(RULES)),   # 9 wants a list; Humble reads a string
])
def test_each_rule_can_refuse(change, refused_by):
    """The checks are not vacuous: each edit of a good version-8 file is refused where due."""
    text = (V8 % QOS8).replace(*change)
    refused = {d for d in RULES if metadata_problems(text, d)}
    assert refused == refused_by, {d: metadata_problems(text, d) for d in RULES}


def test_recovery_keeps_the_version_of_the_bag(tmp_path):
    """A cut-off MCAP is recovered at the version its JSON names, else at the default."""
    spec = SyntheticBagSpec(duration=1.0, image_hw=(240, 320), bag_version=9)
    versions = {}
    for name, meta in (('named', {'bag_version': 9, 'status': 'recording'}), ('bare', None)):
        bag = write_synthetic_bag(tmp_path / name, spec)
        (bag / 'metadata.yaml').unlink()         # what a SIGKILLed recorder leaves
        mcap = next(bag.glob('*.mcap'))
        mcap.write_bytes(mcap.read_bytes()[:int(mcap.stat().st_size * 0.8)])
        if meta:
            bag.with_suffix('.json').write_text(json.dumps(meta))
        report = recover_bag(bag)
        out = Path(report['out'])
        versions[name] = yaml.safe_load((out / 'metadata.yaml').read_text())[
            'rosbag2_bagfile_information']['version']
        assert report['bag_version'] == versions[name] and report['messages'] > 0
    assert versions == {'named': 9, 'bare': DEFAULT_BAG_VERSION}
    forced = recover_bag(tmp_path / 'named', out=tmp_path / 'forced', bag_version=8)
    assert forced['meta']['bag_version'] == 8
    assert_every_distro_reads(tmp_path / 'forced')


def test_recorder_refuses_a_bag_version_it_cannot_write():
    line = exit_2_line('recorder', ['bag_version:=10'])
    assert 'bag_version=10' in line and '8' in line and '9' in line, line

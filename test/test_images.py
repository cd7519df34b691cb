"""The image pipeline (il_ros.images) and the three paths that feed a policy through it.

- every encoding decodes to the same RGB, and bad messages raise errors naming the field;
- ``fit`` equals the conversion's former ``fit_image`` byte for byte on the sim arm's images
  (existing datasets do not change);
- the preprocessing is recorded by conversion, read by training and carried by checkpoints;
- one real rosbag2 bag (written with rosbags) with a padded bgr8 320x240 Image and a JPEG
  CompressedImage gives byte-identical policy input through conversion and through the
  controller's observation path (the rclpy messages deserialized from the same bytes);
- in-process evaluation's CameraFeed gives what the controller builds from the messages the
  sim robot publishes, and holds frames at the camera's rate.

test_controller_node.py runs the controller node on such cameras as a real process.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from il_ros import images, keys
from il_ros.images import ImageError, Preprocess
from il_ros.robot import Camera, IMAGE_ENCODINGS


def old_fit_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The conversion's fit_image before il_ros.images, verbatim: the reference."""
    import cv2
    h, w = rgb.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return np.ascontiguousarray(rgb)
    if h * tw > w * th:        # too tall: crop rows
        keep = round(w * th / tw)
        rgb = rgb[(h - keep) // 2:(h - keep) // 2 + keep]
    elif h * tw < w * th:      # too wide: crop columns
        keep = round(h * tw / th)
        rgb = rgb[:, (w - keep) // 2:(w - keep) // 2 + keep]
    return cv2.resize(np.ascontiguousarray(rgb), (tw, th), interpolation=cv2.INTER_AREA)


def texture(rng, h: int, w: int) -> np.ndarray:
    """A smooth random (h, w, 3) uint8 image with some noise (JPEG keeps its structure)."""
    import cv2
    coarse = rng.integers(0, 256, (max(h // 10, 2), max(w // 10, 2), 3), dtype=np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    return np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)


# ---- decode / encode -----------------------------------------------------------------------
def test_the_encoding_table_is_the_robot_descriptions():
    assert set(images.CHANNELS) == set(IMAGE_ENCODINGS)
    assert 'mono8' not in images.COLOR_ENCODINGS


@pytest.mark.parametrize('encoding', IMAGE_ENCODINGS)
@pytest.mark.parametrize('pad', [0, 7])
def test_every_encoding_decodes_to_the_same_rgb(encoding, pad):
    rgb = texture(np.random.default_rng(1), 30, 41)
    data, step = images.encode_raw(rgb, encoding)
    assert step == 41 * images.CHANNELS[encoding]
    if pad:                                    # a driver that pads its rows
        rows = np.frombuffer(data, np.uint8).reshape(30, step)
        data = np.concatenate([rows, np.full((30, pad), 99, np.uint8)], 1).tobytes()
        step += pad
    out = images.decode_raw(encoding, 30, 41, step, bytearray(data))
    assert out.shape == (30, 41, 3) and out.dtype == np.uint8 and out.flags.writeable
    if encoding == 'mono8':
        import cv2
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        assert np.array_equal(out, np.repeat(grey[..., None], 3, 2))
    else:
        assert np.array_equal(out, rgb)
    assert np.array_equal(images.as_received(rgb, encoding, False), out)


def test_compressed_png_is_exact_and_jpeg_keeps_the_image():
    rgb = texture(np.random.default_rng(2), 48, 64)
    png = images.encode_compressed(rgb, 'png')
    assert np.array_equal(images.decode_compressed('png', png), rgb)
    jpg = images.encode_compressed(rgb)                       # JPEG_QUALITY
    back = images.decode_compressed('rgb8; jpeg compressed bgr8', jpg)
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 6
    assert jpg == images.encode_compressed(rgb, 'jpeg', images.JPEG_QUALITY)   # deterministic
    assert np.array_equal(images.as_received(rgb, 'jpeg', True), back)
    assert len(images.encode_compressed(rgb, 'jpeg', 20)) < len(jpg)
    for fmt, kind in [('jpeg', 'jpeg'), ('PNG', 'png'), ('rgb8; jpeg compressed bgr8', 'jpeg'),
                      ('bgr8; png compressed bgr8', 'png'), ('', None)]:
        assert images.compressed_kind(fmt) == kind


@pytest.mark.parametrize('args, match', [
    (('16UC1', 4, 4, 8, bytes(32)), "unsupported image encoding '16UC1'; supported: rgb8"),
    (('rgb8', 4, 4, 12, bytes(40)), 'image data has 40 bytes, 4x4 rgb8 with step 12 needs 48'),
    (('bgr8', 4, 4, 10, bytes(48)), 'step 10 is shorter than a bgr8 row of 4 px'),
    (('rgb8', 0, 4, 12, b''), 'image is 4x0 .* empty'),
])
def test_raw_decode_errors_name_the_field(args, match):
    with pytest.raises(ImageError, match=match):
        images.decode_raw(*args)


def test_compressed_decode_errors_and_encode_checks():
    jpg = images.encode_compressed(texture(np.random.default_rng(3), 32, 32))
    for data in (b'', b'not an image', jpg[:20]):
        with pytest.raises(ImageError, match="cannot decode CompressedImage with format 'jpeg'"):
            images.decode_compressed('jpeg', data)
    with pytest.raises(ImageError, match="unsupported compressed format 'bmp'"):
        images.encode_compressed(np.zeros((4, 4, 3), np.uint8), 'bmp')
    with pytest.raises(ImageError, match=r'expected an \(H, W, 3\) uint8 RGB image'):
        images.encode_raw(np.zeros((4, 4), np.uint8), 'rgb8')
    msg = SimpleNamespace(encoding='rgb8', height=1, width=2, step=6, data=[1, 2, 3, 4, 5, 6])
    assert images.decode_message(msg).tolist() == [[[1, 2, 3], [4, 5, 6]]]


# ---- preprocess and fit --------------------------------------------------------------------
def test_preprocess_round_trip_and_checks():
    p = Preprocess((48, 64), 'none', 'linear')
    assert Preprocess.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Preprocess() == Preprocess.from_dict({'size': [84, 84]})
    for bad, match in [({'size': [84]}, 'size is'), ({'size': [8, 8], 'crop': 'top'}, 'crop'),
                       ({'size': [8, 8], 'interpolation': 'lanczos'}, 'interpolation'),
                       ({'size': [8, 8], 'scale': 2}, r"unknown key\(s\) \['scale'\]"),
                       ({}, 'missing size')]:
        with pytest.raises(ValueError, match=match):
            Preprocess.from_dict(bad)


def test_fit_matches_the_former_fit_image_on_the_sim_arms_images():
    from il_ros.sim import make_env
    sizes = [(84, 84), (48, 64), (64, 48), (32, 32), (120, 160)]
    checked = 0
    for render in [(84, 84), (240, 320), (100, 60)]:
        env = make_env('lift', cameras=('front', 'wrist'), image_size=render, seed=0)
        try:
            for seed in (0, 1):
                obs = env.reset(seed=seed)
                for cam in ('front', 'wrist'):
                    rgb = obs[keys.image_key(cam)]
                    for size in sizes:
                        new = images.fit(rgb, Preprocess(size))
                        assert new.tobytes() == old_fit_image(rgb, size).tobytes(), (render,
                                                                                      size)
                        checked += 1
        finally:
            env.close()
    assert checked == 3 * 2 * 2 * len(sizes)


def test_fit_options():
    import cv2
    rgb = texture(np.random.default_rng(4), 60, 120)
    assert images.crop_box(60, 120, (30, 30)) == (0, 30, 60, 60)
    assert images.crop_box(120, 60, (30, 30)) == (30, 0, 60, 60)
    out = images.fit(rgb, Preprocess((30, 30), crop='none', interpolation='nearest'))
    assert np.array_equal(out, cv2.resize(rgb, (30, 30), interpolation=cv2.INTER_NEAREST))
    centre = images.fit(rgb, Preprocess((30, 30)))
    assert np.array_equal(centre, cv2.resize(rgb[:, 30:90], (30, 30),
                                             interpolation=cv2.INTER_AREA))
    assert np.array_equal(images.fit(rgb, Preprocess((60, 120), interpolation="cubic")), rgb)


# ---- the preprocessing record: dataset -> training -> checkpoint ---------------------------
def test_dataset_preprocess_is_read_for_training_and_mixed_ones_refused(tmp_path):
    from il_ros.data.store import DatasetWriter, encode_labels
    from il_ros.training.inputs import DatasetError, open_checked_dataset

    def dataset(name, metas):
        with DatasetWriter(tmp_path / name) as w:
            for meta in metas:
                w.append_episode({'image/front': np.zeros((3, 16, 16, 3), np.uint8),
                                  'joint_pos': np.zeros((3, 2), np.float32),
                                  'action': np.zeros((3, 2), np.float32),
                                  'label': encode_labels(['demo'] * 3),
                                  'time': np.arange(3) * 0.05},
                                 {'rate_hz': 20.0, **meta})
        return tmp_path / name
    linear = Preprocess((16, 16), interpolation='linear').to_dict()
    assert open_checked_dataset(dataset('a', [{'preprocess': linear}] * 2),
                                say=lambda s: None).preprocess == Preprocess.from_dict(linear)
    assert open_checked_dataset(dataset('old', [{}]), say=lambda s: None).preprocess == \
        Preprocess((16, 16))                                   # converted before the record
    with pytest.raises(DatasetError, match='different image preprocessing'):
        open_checked_dataset(dataset('mixed', [{'preprocess': linear}, {}]))
    with pytest.raises(DatasetError, match=r'episode 0 was converted to \[8, 8\] images'):
        open_checked_dataset(dataset('lie', [{'preprocess': {'size': [8, 8]}}]))


def test_checkpoint_carries_the_preprocessing(tmp_path):
    from conftest import tiny_sim_checkpoint

    from il_ros.checkpoint_meta import checkpoint_preprocess, read_checkpoint_meta
    from il_ros.models import load_checkpoint, save_checkpoint
    path = tiny_sim_checkpoint(tmp_path / 'a', image_size=(32, 32))
    policy, _ = load_checkpoint(path)
    assert policy.preprocess == Preprocess((32, 32))           # recorded at save
    assert read_checkpoint_meta(path)['preprocess'] == Preprocess((32, 32)).to_dict()
    policy.preprocess = Preprocess((32, 32), crop='none')
    save_checkpoint(policy, tmp_path / 'b')
    assert load_checkpoint(tmp_path / 'b')[0].preprocess == policy.preprocess
    meta = read_checkpoint_meta(path)
    meta.pop('preprocess')                                     # written before the record
    assert checkpoint_preprocess(meta) == Preprocess((32, 32))
    meta['preprocess'] = {'size': [84, 84]}
    with pytest.raises(ValueError, match=r'preprocess size \[84, 84\] != spec image_size'):
        checkpoint_preprocess(meta)
    assert checkpoint_preprocess({'spec': {'cameras': [], 'image_size': [0, 0]}}) is None


# ---- conversion and the controller: the same bytes, the same policy input ------------------
TOPICS = {'front': '/cam/front/color/image_raw', 'wrist': '/cam/wrist/image_raw/compressed'}
JOINTS = ['j1', 'j0', 'j2']                     # the policy's order
PUBLISHED = ['finger', 'j2', 'j0', 'extra', 'j1']   # the robot's order, with extra joints


def write_camera_bag(path, seconds=2.0, cam_hz=15.0):
    """A bag from a 'real' robot: padded bgr8 320x240 and JPEG cameras at 15 Hz."""
    from rosbags.rosbag2 import Writer

    from il_ros.data.synthetic_bag import TYPESTORE
    T = TYPESTORE.types
    rng = np.random.default_rng(5)
    start, events = 1000.0, []

    def header(t):
        sec = int(t)
        return T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](
            sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id='cam')
    for k in range(int(seconds * cam_hz)):
        t = start + k / cam_hz
        data, step = images.encode_raw(texture(rng, 240, 320), 'bgr8')
        rows = np.frombuffer(data, np.uint8).reshape(240, step)
        padded = np.concatenate([rows, np.zeros((240, 64), np.uint8)], 1).reshape(-1)
        events.append((t, TOPICS['front'], 'sensor_msgs/msg/Image', T['sensor_msgs/msg/Image'](
            header=header(t), height=240, width=320, encoding='bgr8', is_bigendian=0,
            step=step + 64, data=padded)))
        jpg = images.encode_compressed(texture(rng, 240, 320))
        events.append((t + 0.003, TOPICS['wrist'], 'sensor_msgs/msg/CompressedImage',
                       T['sensor_msgs/msg/CompressedImage'](
                           header=header(t + 0.003), format='rgb8; jpeg compressed bgr8',
                           data=np.frombuffer(jpg, np.uint8))))
    for k in range(int(seconds * 100)):
        t = start + k / 100
        events.append((t, '/joint_states', 'sensor_msgs/msg/JointState',
                       T['sensor_msgs/msg/JointState'](
                           header=header(t), name=PUBLISHED, position=np.sin(t + np.arange(5)),
                           velocity=np.zeros(5), effort=np.zeros(5))))
    for k in range(int(seconds * 20)):
        t = start + k / 20
        events.append((t, '/cmd', 'std_msgs/msg/Float64MultiArray',
                       T['std_msgs/msg/Float64MultiArray'](
                           layout=T['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
                           data=np.cos(t + np.arange(3)))))
    events.sort(key=lambda e: e[0])
    with Writer(path, version=8) as w:
        conns = {}
        for t, topic, typ, msg in events:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=TYPESTORE)
            w.write(conns[topic], int(round(t * 1e9)), TYPESTORE.serialize_cdr(msg, typ))
    return path


def controller_streams(topics):
    """The controller's Streams with warnings collected: (streams, warnings)."""
    from il_ros.ros.observation import Streams
    warnings = []
    streams = Streams('/joint_states', lambda key, text, *a: warnings.append(text),
                      SimpleNamespace(warning=warnings.append))
    streams.camera_topics.update(topics)
    return streams, warnings


def test_a_bag_converts_to_what_the_controller_feeds_the_policy(tmp_path):
    pytest.importorskip('rclpy')
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CompressedImage, Image, JointState

    from il_ros.data.convert import convert
    from il_ros.data.store import Dataset
    from il_ros.data.topic_map import ConvertConfig, TopicMap
    bag = write_camera_bag(tmp_path / 'bags' / 'ep0')
    cfg = ConvertConfig(topics=TopicMap(cameras=TOPICS, control_source=None,
                                        joint_states={'topic': '/joint_states',
                                                      'joints': JOINTS},
                                        action={'topic': '/cmd'}), image_size=(84, 84))
    reports = convert([tmp_path / 'bags'], tmp_path / 'ds', cfg, progress=False)
    assert [r.status for r in reports] == ['converted'], reports[0].reason
    ds = Dataset(tmp_path / 'ds')
    ep, meta = ds.episode(0), ds.meta(0)
    assert meta['preprocess'] == {'size': [84, 84], 'crop': 'center', 'interpolation': 'area'}

    cls = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CompressedImage': CompressedImage,
           'sensor_msgs/msg/JointState': JointState}
    msgs = {}                                                   # topic -> [(stamp, rclpy msg)]
    with Reader(bag) as r:
        for conn, _, raw in r.messages():
            if conn.msgtype in cls:
                m = deserialize_message(bytes(raw), cls[conn.msgtype])
                st = m.header.stamp
                msgs.setdefault(conn.topic, []).append((st.sec + st.nanosec * 1e-9, m))
    streams, warnings = controller_streams(TOPICS)
    robot = SimpleNamespace(image_size=(84, 84), joint_names=JOINTS)
    checked = set()
    for k, tick in enumerate(ep['time']):
        for topic, key in [*((t, c) for c, t in TOPICS.items()), ('/joint_states', None)]:
            stamps = np.array([s for s, _ in msgs[topic]])
            i = int(np.searchsorted(stamps, tick + 1e-9, side='right')) - 1
            if key is None:
                streams.on_joints(msgs[topic][i][1], tick)
            else:
                streams.on_image(key, msgs[topic][i][1], tick)
                checked.add((key, i))
        obs = streams.observation(tick, robot, [keys.OBS_JOINT_POS], [], 1e9, 1.0)
        assert obs.invalid is None, warnings
        for cam in TOPICS:
            key = keys.image_key(cam)
            assert obs.frame[key].tobytes() == ep[key][k].tobytes(), (cam, k)
        np.testing.assert_allclose(obs.frame[keys.OBS_JOINT_POS], ep[keys.OBS_JOINT_POS][k],
                                   rtol=1e-6)
    assert len(checked) >= 50 and not warnings          # most of the 2 x 30 messages


# ---- the controller's HOLDs and in-process evaluation's view --------------------------------
def test_the_controller_holds_on_a_bad_image_naming_the_topic():
    pytest.importorskip('rclpy')
    from sensor_msgs.msg import CompressedImage, JointState

    from il_ros.ros.conversions import image_msg
    streams, warnings = controller_streams({'front': '/cam/front'})
    robot = SimpleNamespace(image_size=(24, 32), joint_names=['a'])
    streams.on_joints(JointState(name=['a'], position=[0.0]), 0.0)
    rgb = texture(np.random.default_rng(6), 240, 320)
    streams.on_image('front', image_msg(rgb, 0.0, 'f', 'bgr8'), 0.0)
    obs = streams.observation(0.0, robot, [], [], 1.0, 1.0)
    assert obs.invalid is None and obs.frame['image/front'].shape == (24, 32, 3)
    assert np.array_equal(obs.frame['image/front'], images.fit(rgb, Preprocess((24, 32))))
    streams.preprocess = Preprocess((24, 32), crop='none')      # the checkpoint's record
    obs = streams.observation(0.0, robot, [], [], 1.0, 1.0)
    assert np.array_equal(obs.frame['image/front'],
                          images.fit(rgb, Preprocess((24, 32), crop='none')))
    for msg, reason in [(image_msg(rgb, 0.0, 'f', 'mono8'), "encoding 'mono8' is not a colour"),
                        (CompressedImage(format='jpeg', data=b'\xff\xd8 broken'),
                         "cannot decode CompressedImage with format 'jpeg'")]:
        streams.on_image('front', msg, 0.0)
        assert streams.observation(0.0, robot, [], [], 1.0, 1.0).invalid == 'bad_image'
        assert warnings[-1].startswith(f'/cam/front: {reason}') and warnings[-1].endswith('HOLD')


@pytest.mark.parametrize('render, cam', [
    ((84, 84), Camera('front', '/c', 'Image', 'rgb8', 84, 84)),
    ((240, 320), Camera('front', '/c', 'Image', 'bgr8', 320, 240)),
    ((240, 320), Camera('front', '/c', 'CompressedImage', 'jpeg', 320, 240)),
])
def test_in_process_frames_equal_the_controllers_view(render, cam):
    """CameraFeed (in-process) == Streams fed the message the sim robot would publish."""
    pytest.importorskip('rclpy')
    from sensor_msgs.msg import JointState

    from il_ros.ros.conversions import camera_msg
    from il_ros.sim import make_env
    from il_ros.sim.camera_feed import CameraFeed
    env = make_env('lift', image_size=render, seed=0)
    pre = Preprocess((48, 48))
    feed = CameraFeed({'front': cam}, pre)
    streams, warnings = controller_streams({'front': '/c'})
    streams.preprocess = pre
    robot = SimpleNamespace(image_size=(48, 48), joint_names=env.joint_names)
    try:
        obs = env.reset(seed=3)
        for k in range(3):
            t = k * env.control_dt
            mine = feed(obs, t)['image/front']
            streams.on_image('front', camera_msg(obs['image/front'], t, 'f', cam), t)
            streams.on_joints(JointState(name=env.joint_names), t)
            theirs = streams.observation(t, robot, [], [], 1e9, 1.0).frame['image/front']
            assert mine.shape == (48, 48, 3) and mine.tobytes() == theirs.tobytes(), k
            obs = env.step(np.r_[env.arm_qpos() + 0.05, 0.0])[0]
    finally:
        env.close()
    assert not warnings


def test_the_feed_holds_frames_at_the_cameras_rate():
    from il_ros.sim.camera_feed import CameraFeed
    cam15 = Camera('front', '/c', 'Image', 'rgb8', 8, 8, rate_hz=15.0)
    feed = CameraFeed({'front': cam15}, None)
    frames = [np.full((8, 8, 3), k, np.uint8) for k in range(8)]
    seen = [int(feed({'image/front': f}, k * 0.05)['image/front'][0, 0, 0])
            for k, f in enumerate(frames)]
    assert seen == [0, 0, 2, 3, 4, 4, 6, 7]       # samples at 0, 1/15, 2/15...: every 4th
    feed.reset()                                  # a new episode: a new frame at t = 0
    assert feed({'image/front': frames[5]}, 0.0)['image/front'][0, 0, 0] == 5
    nohold = CameraFeed({'front': cam15}, None, hold=False)
    assert [int(nohold({'image/front': f}, k * 0.05)['image/front'][0, 0, 0])
            for k, f in enumerate(frames)] == list(range(8))
    assert nohold({'joint_pos': 1}, 0.0) == {'joint_pos': 1}



def test_the_feed_and_render_size_come_from_the_robot_description():
    from il_ros.robot import load_robot
    from il_ros.sim.camera_feed import CameraFeed, native_size
    panda, arm = load_robot('panda'), load_robot('sim_arm')
    assert native_size(panda, ['front', 'wrist']) == (240, 320)
    assert native_size(arm, ['front']) == (84, 84)
    odd = load_robot('panda')
    odd.camera('wrist').width = 640
    with pytest.raises(ValueError, match=r'different native sizes \[\(240, 320\), \(240, 640'):
        native_size(odd, ['front', 'wrist'])
    policy = SimpleNamespace(spec=SimpleNamespace(image_size=(84, 84)))
    env = SimpleNamespace(cameras=('front', 'wrist'), robot=panda)
    feed = CameraFeed.of(env, policy)
    assert feed.preprocess == Preprocess((84, 84)) and feed.cameras['wrist'].compressed
    assert feed.cameras['front'].encoding == 'bgr8'
    assert CameraFeed.of(SimpleNamespace(cameras=('front',)), object()).cameras == {
        'front': arm.camera('front')}                        # no env.robot: the sim arm
    with pytest.raises(KeyError, match="no camera 'top'"):
        CameraFeed.of(SimpleNamespace(cameras=('top',), robot=panda), policy)



def test_after_a_policy_reset_the_controller_waits_for_new_frames():
    """A reset starts an episode: the last episode's final frames must not reach its plan."""
    pytest.importorskip('rclpy')
    from sensor_msgs.msg import JointState

    from il_ros.ros.conversions import image_msg
    streams, warnings = controller_streams({'front': '/cam/front'})
    robot = SimpleNamespace(image_size=(24, 32), joint_names=['a'])
    rgb = texture(np.random.default_rng(7), 48, 64)
    streams.on_joints(JointState(name=['a'], position=[0.0]), 1.0)
    streams.on_image('front', image_msg(rgb, 1.0, 'f', 'rgb8'), 1.0)
    assert streams.observation(1.0, robot, [], [], 1.0, 1.0).invalid is None
    streams.restart(1.05)
    assert streams.observation(1.06, robot, [], [], 1.0, 1.0).invalid == 'no_joint_states'
    streams.on_joints(JointState(name=['a'], position=[0.1]), 1.06)
    assert streams.observation(1.07, robot, [], [], 1.0, 1.0).invalid == 'no_image'
    assert not warnings                     # a frame a camera period away is no news
    assert streams.observation(2.2, robot, [], [], 1.0, 1.0).invalid == 'no_image'
    assert warnings[-1].startswith('no image on /cam/front since the policy reset 1.15 s ago')
    streams.on_image('front', image_msg(rgb, 2.2, 'f', 'rgb8'), 2.21)
    streams.on_joints(JointState(name=['a'], position=[0.1]), 2.21)
    obs = streams.observation(2.22, robot, [], [], 1.0, 1.0)
    assert obs.invalid is None and obs.frame['image/front'].shape == (24, 32, 3)

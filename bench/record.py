"""Recorder benchmark: 30 Hz 640x480 rgb8 images + 500 Hz joint states, recorder in a process.

    python bench/record.py [--mode reliable] [--duration 60] [--storage mcap]
    python bench/record.py --mode best-effort [--duration 60] [--hogs 2] [--profile both]

Three processes per run on a fresh random ROS_DOMAIN_ID (localhost discovery): this script (a
service client only), a publisher (this file with ``--role publisher``) and the recorder node
(``python -m il_ros.ros.recorder``). The publisher waits until the recorder has subscribed
and an episode is open, publishes for ``--duration`` s and reports its counts; lost = published
- recorded in the bag. The recorder's CPU time comes from /proc/<pid>/stat over the
publishing window (100% = one core).

``--mode reliable`` publishes on reliable QoS. ``--mode best-effort`` publishes both topics
with sensor-data QoS (best effort, keep last 5), as camera drivers do: nothing is resent, so
what the transport drops is lost. ``--profile`` runs the publisher and the recorder with the
Fast DDS profile il-ros applies (config/dds/fastdds.xml, or ``--profile-file``), without any
profile (Fast DDS defaults), or ``both``: one run each, back to back in one invocation, so
the profile's effect is a ratio measured under the same conditions (the default in best-effort
mode). ``--hogs N`` runs N busy-loop processes beside it for the whole invocation.

Reliable mode also writes, in the same run, the same number of messages of the same sizes
straight to an MCAP bag with ``rosbags`` (no ROS, no queue): ``stream_vs_raw_write`` is the
share of that raw write speed the stream needs; ``recorder_cpu_vs_raw_write_cpu`` is how much
CPU the recorder spends per byte relative to the bare write (receive, rclpy, queue and write).
Prints one JSON object; exits 1 if a run with the profile (or the only run) lost a message.
Child processes are stopped by pid.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from il_ros.launcher import (DDS_PROFILE_VARS, dds_profile_env,  # noqa: E402
                             dds_profile_path, stop_processes)

IMAGE_TOPIC, JOINT_TOPIC = '/bench/image', '/bench/joint_states'
CLK_TCK = os.sysconf('SC_CLK_TCK')
SENSOR_QOS_TEXT = 'sensor data: best effort, keep last 5, volatile'


def cpu_seconds(pid: int) -> float:
    """CPU time (utime + stime) of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


# ---------------------------------------------------------------- publisher process

def run_publisher(args) -> None:
    """Publish images and joint states at fixed rates once 'go' arrives on stdin."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = rclpy.create_node('bench_publisher')
    if args.mode == 'best-effort':
        img_qos = js_qos = qos_profile_sensor_data
    else:
        img_qos = QoSProfile(depth=60, reliability=ReliabilityPolicy.RELIABLE)
        js_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    img_pub = node.create_publisher(Image, IMAGE_TOPIC, img_qos)
    js_pub = node.create_publisher(JointState, JOINT_TOPIC, js_qos)
    img = Image(height=args.height, width=args.width, encoding='rgb8', step=3 * args.width)
    img.data = bytes(range(256)) * (3 * args.width * args.height // 256)
    js = JointState(name=[f'joint_{i}' for i in range(7)], position=[0.0] * 7,
                    velocity=[0.0] * 7, effort=[0.0] * 7)
    deadline = time.monotonic() + 30
    while (img_pub.get_subscription_count() < 1 or js_pub.get_subscription_count() < 1):
        if time.monotonic() > deadline:
            sys.exit('publisher: the recorder never subscribed')
        time.sleep(0.05)
    print('ready', flush=True)
    if sys.stdin.readline().strip() != 'go':
        sys.exit('publisher: no go')
    n_img = n_js = 0
    late = 0.0
    t0 = time.perf_counter()
    end = t0 + args.duration
    total_img, total_js = round(args.duration * args.image_hz), round(args.duration * args.js_hz)
    while n_img < total_img or n_js < total_js:
        now = time.perf_counter()
        due_js, due_img = t0 + n_js / args.js_hz, t0 + n_img / args.image_hz
        if n_js < total_js and now >= due_js:
            late = max(late, now - due_js)
            js.header.stamp = node.get_clock().now().to_msg()
            js.position[0] = float(n_js)
            js_pub.publish(js)
            n_js += 1
        if n_img < total_img and now >= due_img:
            late = max(late, now - due_img)
            img.header.stamp = node.get_clock().now().to_msg()
            img.header.frame_id = str(n_img)
            img_pub.publish(img)
            n_img += 1
        nxt = min(t0 + n_js / args.js_hz if n_js < total_js else end,
                  t0 + n_img / args.image_hz if n_img < total_img else end)
        time.sleep(max(0.0, nxt - time.perf_counter()))
    wall = time.perf_counter() - t0
    print(json.dumps({'published': {IMAGE_TOPIC: n_img, JOINT_TOPIC: n_js},
                      'publish_wall_s': wall, 'max_late_ms': late * 1e3}), flush=True)
    time.sleep(2.0)  # let reliable retransmissions finish before the writer goes away
    node.destroy_node()
    rclpy.try_shutdown()


# ---------------------------------------------------------------- orchestration

def call(node, srv_type, name, data=None, timeout=60.0):
    import rclpy
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout):
        raise RuntimeError(f'{name} not available')
    req = srv_type.Request()
    if data is not None:
        req.data = data
    future = client.call_async(req)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise RuntimeError(f'{name} did not answer')
    return future.result()


def raw_write_baseline(tmp: Path, counts: dict, sizes: dict) -> dict:
    """Write the same number of same-size messages straight to MCAP with rosbags."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    from il_ros.data.episode_writer import DEFAULT_BAG_VERSION
    ts = get_typestore(Stores.ROS2_KILTED)
    counts = {t: n for t, n in counts.items() if n}
    payload = {t: bytes(sizes[t]) for t in counts}
    order = sorted([(i / counts[t], t) for t in counts for i in range(counts[t])])
    nbytes = sum(counts[t] * sizes[t] for t in counts)
    c0, t0 = time.process_time(), time.perf_counter()
    with Writer(tmp / 'raw', version=DEFAULT_BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {IMAGE_TOPIC: w.add_connection(IMAGE_TOPIC, 'sensor_msgs/msg/Image',
                                               typestore=ts),
                 JOINT_TOPIC: w.add_connection(JOINT_TOPIC, 'sensor_msgs/msg/JointState',
                                               typestore=ts)}
        for i, (_, topic) in enumerate(order):
            w.write(conns[topic], i, payload[topic])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {'bytes': nbytes, 'wall_s': wall, 'cpu_s': cpu, 'mb_per_s': nbytes / wall / 1e6}


def bag_counts(bag: Path) -> tuple[dict, dict, dict]:
    """Per-topic message count, total bytes and first payload size of a bag."""
    from rosbags.rosbag2 import Reader
    counts, nbytes, size = {}, {}, {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            nbytes[conn.topic] = nbytes.get(conn.topic, 0) + len(raw)
            size.setdefault(conn.topic, len(raw))
    return counts, nbytes, size


def child_env(tmp: Path, profile: Path | None) -> dict:
    """Environment of one run's publisher and recorder: a fresh domain, ``profile`` or none."""
    env = {k: v for k, v in os.environ.items() if k not in DDS_PROFILE_VARS}
    env.update(ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_HOME=str(tmp / 'ros'),
               ROS_LOG_DIR=str(tmp / 'ros_log'), PYTHONUNBUFFERED='1')
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if profile is not None:
        env.update({name: str(profile) for name in dds_profile_env(env)})
    return env


def start_hogs(n: int) -> list[subprocess.Popen]:
    """``n`` busy-loop processes (one core each while they get it), stopped by pid later."""
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass'],
                             start_new_session=True) for _ in range(n)]


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def run_once(args, profile: Path | None) -> dict:
    """One publisher + recorder run; per-topic counts, loss, recorder CPU and the episode."""
    tmp = Path(tempfile.mkdtemp(prefix='il_ros_bench_record_'))
    env = child_env(tmp, profile)
    # This process is only a service client; it keeps Fast DDS's defaults in every run.
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'ROS_HOME', 'ROS_LOG_DIR')})
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    import rclpy
    from std_srvs.srv import SetBool, Trigger

    load_before = os.getloadavg()[0]
    out = tmp / 'episodes'
    rec_log = open(tmp / 'recorder.log', 'wb')  # noqa: SIM115
    rec = subprocess.Popen(
        [sys.executable, '-m', 'il_ros.ros.recorder', '--ros-args', '-p', f'output_dir:={out}',
         '-p', f'topics:=[{IMAGE_TOPIC}, {JOINT_TOPIC}]', '-p', f'storage:={args.storage}',
         '-p', f'queue_size:={args.queue_size}'],
        cwd=REPO, env=env, stdout=rec_log, stderr=subprocess.STDOUT, start_new_session=True)
    pub = subprocess.Popen(
        [sys.executable, __file__, '--role', 'publisher', '--mode', args.mode,
         '--duration', str(args.duration), '--width', str(args.width),
         '--height', str(args.height), '--image-hz', str(args.image_hz),
         '--js-hz', str(args.js_hz)],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True)
    rclpy.init()
    node = rclpy.create_node('bench_record_client')
    try:
        if pub.stdout.readline().strip() != 'ready':
            raise RuntimeError('publisher failed to start')
        res = call(node, Trigger, '/recorder/start_episode')
        if not res.success:
            raise RuntimeError(res.message)
        cpu0, pcpu0, t0 = cpu_seconds(rec.pid), cpu_seconds(pub.pid), time.perf_counter()
        pub.stdin.write('go\n')
        pub.stdin.flush()
        report = json.loads(pub.stdout.readline())
        pub_cpu = cpu_seconds(pub.pid) - pcpu0
        load = os.getloadavg()[0]
        pub.wait(30)
        time.sleep(1.0)  # delivery of the last messages
        cpu1, t1 = cpu_seconds(rec.pid), time.perf_counter()
        s0 = time.perf_counter()
        res = call(node, SetBool, '/recorder/stop_episode', True)
        stop_s = time.perf_counter() - s0
        rss = peak_rss_mb(rec.pid)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_processes([pub, rec], timeout=20)
        rec_log.close()
    meta = json.loads((out / 'episode_0000.json').read_text())
    counts, nbytes, sizes = bag_counts(out / 'episode_0000')
    published = report['published']
    lost = {t: published[t] - counts.get(t, 0) for t in published}
    window = t1 - t0
    rec_cpu = cpu1 - cpu0
    total = sum(nbytes.values())
    stream_mb_s = total / report['publish_wall_s'] / 1e6
    result = {
        'dds_profile': str(profile) if profile else None,
        'published': published, 'recorded': counts, 'lost': lost,
        'lost_percent': {t: percent(lost[t], published[t]) for t in published},
        'recorder_cpu_percent': round(100 * rec_cpu / window, 1),
        'recorder_drops': meta.get('drops_total'), 'episode_status': meta.get('status'),
        # Per topic, the episode's scalar metadata (counts, rates, gaps) as the recorder wrote it.
        'episode_topics': {t: {k: v for k, v in m.items() if isinstance(v, (int, float, str))}
                           for t, m in meta.get('topics', {}).items()},
        'stop_response': res.message, 'stop_episode_s': round(stop_s, 3),
        'publisher_max_late_ms': round(report['max_late_ms'], 2),
        'recorder_peak_rss_mb': round(rss, 1),
        'publisher_cpu_percent': round(100 * pub_cpu / report['publish_wall_s'], 1),
        'load_average_1min_before': round(load_before, 2),
        'load_average_1min_at_end': round(load, 2),
        'recorded_mb': round(total / 1e6, 1),
        'stream_mb_per_s': round(stream_mb_s, 2),
        'bag_file_mb': round(sum(f.stat().st_size for f in (out / 'episode_0000').iterdir())
                             / 1e6, 1),
    }
    if args.mode == 'reliable':
        raw = raw_write_baseline(tmp, published, sizes)
        result['raw_write_baseline'] = {k: round(v, 3) for k, v in raw.items()}
        result['stream_vs_raw_write'] = round(stream_mb_s / raw['mb_per_s'], 4)
        result['recorder_cpu_vs_raw_write_cpu'] = round(rec_cpu / raw['cpu_s'], 2)
    if args.keep:
        result['kept'] = str(tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def run_bench(args) -> dict:
    """The runs ``--profile`` asks for (default profile first), with ``--hogs`` beside them."""
    profile = Path(args.profile_file) if args.profile_file else dds_profile_path()
    choice = args.profile or ('both' if args.mode == 'best-effort' else 'on')
    plan = {'on': [('profile', profile)], 'off': [('no_profile', None)],
            'both': [('no_profile', None), ('profile', profile)]}[choice]
    for name in DDS_PROFILE_VARS:   # this process stays on Fast DDS's defaults
        os.environ.pop(name, None)
    result = {
        'mode': args.mode, 'duration_s': args.duration, 'storage': args.storage,
        'image': f'{args.width}x{args.height} rgb8 @ {args.image_hz:g} Hz',
        'joint_states_hz': args.js_hz,
        'qos': SENSOR_QOS_TEXT if args.mode == 'best-effort' else 'reliable',
        'hogs': args.hogs, 'cpus': os.cpu_count(), 'runs': {},
    }
    hogs = start_hogs(args.hogs)
    try:
        for name, path in plan:
            result['runs'][name] = run_once(args, path)
    finally:
        stop_processes(hogs, timeout=5)
    runs = result['runs']
    if 'profile' in runs and 'no_profile' in runs:
        result['images_lost_percent'] = {n: r['lost_percent'][IMAGE_TOPIC]
                                         for n, r in runs.items()}
        result['joint_states_lost_percent'] = {n: r['lost_percent'][JOINT_TOPIC]
                                               for n, r in runs.items()}
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mode', default='reliable', choices=['reliable', 'best-effort'],
                   help='publisher QoS: reliable, or sensor data (best effort)')
    p.add_argument('--duration', type=float, default=60.0)
    p.add_argument('--hogs', type=int, default=0, help='busy-loop processes beside the runs')
    p.add_argument('--profile', choices=['on', 'off', 'both'], default=None,
                   help='run with the DDS profile, without, or both (default: both in '
                        'best-effort mode, on in reliable mode)')
    p.add_argument('--profile-file', default=None,
                   help='a Fast DDS XML profile instead of config/dds/fastdds.xml')
    p.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--image-hz', type=float, default=30.0)
    p.add_argument('--js-hz', type=float, default=500.0)
    p.add_argument('--queue-size', type=int, default=1000)
    p.add_argument('--keep', action='store_true', help='keep the bags and logs')
    p.add_argument('--role', default='bench', choices=['bench', 'publisher'])
    args = p.parse_args()
    if args.role == 'publisher':
        run_publisher(args)
        return 0
    result = run_bench(args)
    print(json.dumps(result, indent=1))
    runs = result['runs']
    judged = runs.get('profile') or next(iter(runs.values()))
    return 0 if all(v == 0 for v in judged['lost'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())

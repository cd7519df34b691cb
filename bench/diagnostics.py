"""What /diagnostics costs the recorder: per received message, and per report; prints JSON.

    python bench/diagnostics.py [--messages 1000000] [--topics 5] [--reports 2000]

``on_msg`` runs in every recorder callback (it counts the message for the topic's rate);
``collect`` builds the recorder's three statuses (episode, disk, topics) once a second.
Timed in process on an rclpy node with no timer (no DDS traffic), best of 5 repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from types import SimpleNamespace

import rclpy

from il_ros.ros.node_diagnostics import RecorderDiagnostics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--topics', type=int, default=5)
    ap.add_argument('--reports', type=int, default=2000)
    args = ap.parse_args()
    rclpy.init()
    ros = rclpy.create_node('bench_diagnostics')
    topics = [f'/topic_{i}' for i in range(args.topics)]
    params = {'output_dir': tempfile.mkdtemp(), 'expected_topics_timeout_s': 5.0}
    node = SimpleNamespace(get_name=ros.get_name, get_clock=ros.get_clock,
                           create_publisher=ros.create_publisher, configured_topics=topics,
                           subscribed={}, episode=None, last_result='',
                           param=params.__getitem__)
    rd = RecorderDiagnostics(node, start=False)
    per_msg, per_report = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(args.messages):
            rd.on_msg(topics[i % args.topics])
        per_msg.append((time.perf_counter() - t0) / args.messages)
        t0 = time.perf_counter()
        for _ in range(args.reports):
            rd.diag.collect()
        per_report.append((time.perf_counter() - t0) / args.reports)
    print(json.dumps({
        'on_msg_ns': round(min(per_msg) * 1e9, 1),
        'collect_us': round(min(per_report) * 1e6, 1),
        'topics': args.topics, 'messages': args.messages, 'reports': args.reports,
        'load_1min': round(os.getloadavg()[0], 2)}))
    ros.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()

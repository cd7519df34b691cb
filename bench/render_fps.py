"""Offscreen render rate of a robot's sim scene, per camera and size; prints JSON.

    .venv/bin/python bench/render_fps.py --robot panda --task lift \
        [--sizes 320x240 84x84] [--frames 200]

For each size (WIDTHxHEIGHT) it renders every camera of the scene ``--frames`` times, the
arm moving between frames (an expert episode), with shadows and reflections off as SimEnv
always renders; reported per size: frames per second for each camera alone and for one
frame of all cameras together (what ``sim_robot`` pays per tick with every camera on). It
uses whatever MUJOCO_GL selects (EGL by default: Mesa's software renderer on a machine
without a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def measure(robot: str, task: str, width: int, height: int, frames: int) -> dict:
    """Render ``frames`` frames of each camera at ``width`` x ``height``; return the rates."""
    from il_ros.sim import make_env, make_expert
    env = make_env(task, robot, render=False, image_size=(height, width))
    cams = [env.model.camera(i).name for i in range(env.model.ncam)]
    expert = make_expert(task, env.robot, seed=0)
    per_cam = {c: 0.0 for c in cams}
    try:
        env.reset(seed=0)
        expert.reset(env)
        env.render(cams[0])                          # make the renderer (not timed)
        for i in range(frames):
            for c in cams:
                t = time.perf_counter()
                env.render(c)
                per_cam[c] += time.perf_counter() - t
            _, _, done = env.step(expert.act(env).executed)
            if done:
                env.reset(seed=i + 1)
                expert.reset(env)
    finally:
        env.close()
    total = sum(per_cam.values())
    return {'size': f'{width}x{height}', 'frames': frames,
            'fps': {c: round(frames / s, 1) for c, s in per_cam.items()},
            'fps_all_cameras': round(frames / total, 1),
            'ms_per_frame': {c: round(1e3 * s / frames, 2) for c, s in per_cam.items()}}


def main(argv: list[str] | None = None) -> int:
    """Measure every size and print one JSON object."""
    from il_ros.render import setup_headless_gl
    setup_headless_gl()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--robot', default='panda')
    ap.add_argument('--task', default='lift')
    ap.add_argument('--sizes', nargs='+', default=['320x240', '84x84'])
    ap.add_argument('--frames', type=int, default=200)
    args = ap.parse_args(argv)
    rows = []
    for s in args.sizes:
        w, h = (int(v) for v in s.lower().split('x'))
        rows.append(measure(args.robot, args.task, w, h, args.frames))
    print(json.dumps({'robot': args.robot, 'task': args.task,
                      'mujoco_gl': os.environ.get('MUJOCO_GL'), 'shadows': False,
                      'results': rows}))
    return 0


if __name__ == '__main__':
    sys.exit(main())

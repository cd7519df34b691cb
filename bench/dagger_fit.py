r"""How closely checkpoints reproduce a dataset's labels, per label (demo, intervention...).

For each frame the policy plans a fresh chunk from the frame's observation (reset first, so
no history or queued actions carry over); its first action and the frame's label are both
turned into hand positions by the env's forward kinematics, and compared with the hand's
measured position. Prints one JSON line per (checkpoint, label): the label's and the
prediction's hand step (median, mm), the median distance between them (``err_mm``), and the
prediction's step along the label's direction and across it. Then, per (checkpoint,
label), the normalized chunk error per action dimension (``per_dim``, the terms the MSE
loss averages; ``loss`` is their mean) and the range each dimension's normalizer maps to
[-1, 1] (``action_range``).

    python bench/dagger_fit.py --dataset RUN/hg-uniform_s1/dataset --task path \
        --checkpoints A/checkpoints/last B/checkpoints/last [--labels demo intervention] \
        [--every 7]

``--every K`` keeps every K-th frame of the labels in ``--sparse`` (default: demo) and
every frame of the others, so that a few hundred corrections are not drowned by thousands
of demo frames. Used in docs/experiments/hg-dagger.md to ask whether a round's training
fits its corrections at all.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def hand_xy(env, joints: np.ndarray) -> np.ndarray:
    """Horizontal hand position (m) with the arm at ``joints`` (arm joints, command order)."""
    q = env.data.qpos.copy()
    q[env.ik.qpos_idx] = joints
    return env.ik.site_pose(q)[0][:2]


def frames_of(ds, labels: list[str], sparse: list[str], every: int) -> list[tuple[str, dict]]:
    from il_ros.data.store import decode_labels
    out = []
    for ep in range(ds.num_episodes):
        d = ds.episode(ep)
        names = decode_labels(d['label'])
        for t, name in enumerate(names):
            if name in labels and (name not in sparse or t % every == 0):
                out.append((name, {k: v[t] for k, v in d.items() if k not in ('label', 'time')}))
    return out


def fit(checkpoint: str, frames, env) -> list[dict]:
    import torch

    from il_ros import keys
    from il_ros.models import load_checkpoint
    policy, _ = load_checkpoint(checkpoint)
    policy.eval()
    arm = env.arm_action_idx
    names = list(env.joint_names)
    joints = [names.index(env.action_names[i]) for i in arm]
    per: dict[str, list] = {}
    with torch.no_grad():
        for name, f in frames:
            policy.reset()
            act = np.asarray(policy.act({k: v for k, v in f.items() if k != keys.ACTION}))
            hand = hand_xy(env, f[keys.OBS_JOINT_POS][joints])
            per.setdefault(name, []).append((hand_xy(env, f[keys.ACTION][arm]) - hand,
                                             hand_xy(env, act[arm]) - hand))
    rows = []
    for name, pairs in per.items():
        label = np.array([p[0] for p in pairs])
        pred = np.array([p[1] for p in pairs])
        unit = label / np.maximum(np.linalg.norm(label, axis=1, keepdims=True), 1e-9)
        along = (pred * unit).sum(1)
        across = np.abs(pred[:, 0] * unit[:, 1] - pred[:, 1] * unit[:, 0])
        mm = lambda x: round(1000 * float(np.median(x)), 2)    # noqa: E731
        rows.append({'checkpoint': checkpoint, 'label': name, 'frames': len(pairs),
                     'label_step_mm': mm(np.linalg.norm(label, axis=1)),
                     'pred_step_mm': mm(np.linalg.norm(pred, axis=1)),
                     'err_mm': mm(np.linalg.norm(pred - label, axis=1)),
                     'along_mm': mm(along), 'across_mm': mm(across)})
    return rows


def dim_loss(checkpoint: str, dataset, labels: list[str], frames: int = 512) -> list[dict]:
    """Per label: the policy's normalized chunk error per action dimension (eval mode).

    Up to ``frames`` random frames of each label, chunks ending where control changes hands
    as in training, compared as the head's loss compares them (``Policy.stacked_chunks``);
    the mean over a dimension's valid chunk steps of (prediction - target)^2 in the policy's
    normalized units, which is what the squared-error loss sums.
    """
    import torch

    from il_ros.data.sampler import WindowDataset
    from il_ros.data.store import decode_labels
    from il_ros.models import load_checkpoint
    policy, _ = load_checkpoint(checkpoint)
    policy.eval()
    if policy.core.sequence:
        raise NotImplementedError('dim_loss: only frame-stack (none) cores')
    wd = WindowDataset(dataset, chunk_by_source=True, label_weights={'demo': 1.0},
                       **policy.sampler_spec())
    names = np.array(decode_labels(wd._load('label')))
    rows = []
    for name in labels:
        idx = np.flatnonzero(names == name)
        if not idx.size:
            continue
        idx = np.random.default_rng(0).choice(idx, min(frames, idx.size), replace=False)
        total, count = 0.0, 0.0
        with torch.no_grad():
            for j in range(0, idx.size, 64):
                features, target, mask = policy.stacked_chunks(wd.batch(idx[j:j + 64]))
                pred = policy.head(features)
                valid = mask.to(pred.dtype)[..., None]
                total = total + (((pred - target) ** 2) * valid).sum((0, 1))
                count = count + valid.sum((0, 1))
        per = (total / count).numpy()
        rows.append({'checkpoint': checkpoint, 'label': name, 'frames': int(idx.size),
                     'loss': round(float(per.mean()), 5),
                     'per_dim': dict(zip(policy.spec.action_names,
                                         (round(float(v), 5) for v in per))),
                     'action_range': dict(zip(policy.spec.action_names, (
                         round(float(2.0 / sc), 4)
                         for sc in policy.normalizers['action'].scale)))})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', required=True)
    p.add_argument('--task', default='path')
    p.add_argument('--checkpoints', nargs='+', required=True)
    p.add_argument('--labels', nargs='+', default=['demo', 'intervention'])
    p.add_argument('--sparse', nargs='*', default=['demo'])
    p.add_argument('--every', type=int, default=7)
    args = p.parse_args()
    from il_ros.data.store import Dataset
    from il_ros.sim import make_env
    env = make_env(args.task, render=False)
    frames = frames_of(Dataset(args.dataset), args.labels, args.sparse, max(1, args.every))
    for ckpt in args.checkpoints:
        for row in fit(ckpt, frames, env) + dim_loss(ckpt, args.dataset, args.labels):
            print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()

r"""Open-loop action error of checkpoints on held-out demo windows; prints JSON.

What the policy would do at each recorded state, against the demonstrator's label.

    python bench/action_error.py --dataset data/datasets/lift CKPT [CKPT ...] [--windows 512]

Per checkpoint: the mean squared error of the first action the head returns at act time
(normalized units, per action dimension), and, when the last action dimension is a gripper
(two values in the data), how often its open/closed state is right. For a ``gmm`` head the
state is the mixture's (the weight of the modes whose mean is closed > 0.5), or with
``binary_dims`` its own Bernoulli's, and the joint error is the top mode's; beside it
``mse_arm_nearest_mode`` (the arm error of the mode nearest the label: a low one means the
fit is there and the pick is wrong) and ``top_mode_weight`` (its mean weight). Held-out
episodes: the trainer's split (val_fraction 0.1, seed 0).

A low open-loop error with a low closed-loop success points at the closed loop (compounding
errors, copycat cues); a high one at the fit (docs/models.md uses it on the GMM rows).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from il_ros import keys


def action_error(ckpt: str, ds, episodes: list[int], windows: int) -> dict:
    """The error fields of one checkpoint (see the module docstring)."""
    from il_ros.data.sampler import WindowDataset
    from il_ros.models.heads.gmm import GmmHead
    from il_ros.models import load_checkpoint
    pol, _ = load_checkpoint(ckpt)
    pol.eval()
    wd = WindowDataset(ds, episodes=episodes, **pol.sampler_spec())
    idx = np.random.default_rng(0).choice(len(wd), min(windows, len(wd)), replace=False)
    norm = pol.normalizers[keys.ACTION]
    err, closed_p, closed, best_err, top_w = [], [], [], [], []
    with torch.no_grad():
        for s in range(0, len(idx), 64):
            b = wd.batch(idx[s:s + 64])
            obs = b['obs']
            feats = pol.encoder(pol._images(obs, False), pol._proprio(obs))
            if pol.core.sequence:      # the last frame of the window, as at act time
                f = pol.core(feats)[:, -1]
                label = b['action_seq'][:, -1]
            else:
                f = pol.core(feats)[:, 0]
                label = b['action'][:, 0]
            target = norm.normalize(label.float())                       # (B, A)
            top = pol.head.sample(f)[:, 0]           # gmm: the top mode's mean (no prior)
            p = (top[:, -1] > 0).float()
            if isinstance(pol.head, GmmHead):          # P(closed) rather than the top mode's
                logits, means, _, binary = pol.head.outputs(f)
                a = pol.head.action_dim - 1
                if a in pol.head.binary:               # its own Bernoulli
                    p = binary[:, 0, pol.head.binary.index(a)].sigmoid()
                else:                                  # the weight of the modes that close
                    p = (logits.softmax(-1) * (means[:, :, 0, -1] > 0)).sum(-1)
                # the mode nearest the label: is the top mode's error the fit or the pick?
                c = pol.head.continuous
                arm = [i for i in c if i != a]
                d = ((means[:, :, 0, [c.index(i) for i in arm]] - target[:, None, arm]) ** 2)
                best_err.append(d.mean(-1).min(-1).values.numpy())
                top_w.append(logits.softmax(-1).max(-1).values.numpy())
            err.append(((top - target) ** 2).numpy())
            closed_p.append(p.numpy())
            closed.append((target[:, -1] > 0).numpy())
    err = np.concatenate(err)
    out = {'checkpoint': ckpt, 'windows': int(len(err)),
           'mse_per_dim': np.round(err.mean(0), 5).tolist(),
           'mse_arm': float(err[:, :-1].mean())}
    if best_err:
        out.update(mse_arm_nearest_mode=float(np.concatenate(best_err).mean()),
                   top_mode_weight=float(np.concatenate(top_w).mean()))
    if len(np.unique(np.asarray(ds.episode(episodes[0], [keys.ACTION])[keys.ACTION])[:, -1])) <= 2:
        c, p = np.concatenate(closed), np.concatenate(closed_p)
        out.update(gripper_closed_fraction=float(c.mean()),
                   gripper_state_accuracy=float(((p > 0.5) == c).mean()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('checkpoints', nargs='+')
    ap.add_argument('--dataset', required=True)
    ap.add_argument('--windows', type=int, default=512)
    args = ap.parse_args(argv)
    from il_ros.data.sampler import split_episodes
    from il_ros.data.store import Dataset
    torch.set_num_threads(1)
    ds = Dataset(args.dataset)
    _, val = split_episodes(ds.num_episodes, 0.1, 0)
    res = [action_error(c, ds, val, args.windows) for c in args.checkpoints]
    print(json.dumps({'dataset': args.dataset, 'episodes': val, 'results': res}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

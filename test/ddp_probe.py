"""One rank of a DDP training run for test_distributed.py (started by torchrun).

    torchrun --standalone --nproc_per_node 2 test/ddp_probe.py CONFIG.yaml DATASET OUT

Trains with ``il_ros.training.train`` semantics through DistTrainer, then writes this rank's
weights digest, step and summary to ``OUT/rank<R>.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import sys

import torch

from il_ros.training.config import load_train_config
from il_ros.training.distributed import DistTrainer


def digest(module) -> str:
    """SHA-256 of a module's state dict (names and bytes, in order)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    """Train, then report this rank's weights."""
    config, dataset, out = sys.argv[1:4]
    torch.set_num_threads(1)
    trainer = DistTrainer(load_train_config(config, progress=False), out, dataset)
    summary = trainer.run()
    rank = int(os.environ['RANK'])
    (Path(out) / f'rank{rank}.json').write_text(json.dumps({
        'rank': rank, 'step': trainer.step, 'digest': digest(trainer.policy),
        'ema_digest': digest(trainer.ema.shadow) if trainer.ema is not None else None,
        'status': summary['status']}))


if __name__ == '__main__':
    main()

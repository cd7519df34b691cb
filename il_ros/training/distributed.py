"""One training run on several processes with PyTorch DistributedDataParallel (torchrun).

    il-ros train --config demo --dataset DS --out RUN --nproc 2
    torchrun --standalone --nproc_per_node 2 -m il_ros.train_cli train --config demo ...

Every process (rank) builds the same policy; DDP copies rank 0's weights to the others and
averages the gradients of every step, so all ranks hold the same weights throughout. The
rules:

- **Global batch.** ``batch_size`` is the global batch: every step the sampler draws the same
  batch of ``batch_size`` windows on every rank (same seed and step, as a single process
  would) and each rank trains on its own ``batch_size / world_size`` of them, so the loss
  and gradients equal the single-process ones up to floating point, and the learning-rate
  rules (warmup, cosine, ``lr``) are unchanged. ``batch_size`` must divide by the number of
  processes.
- **Rank 0 decides and writes.** The budget (steps or minutes), stops and the moments of
  evaluation are rank 0's, sent to the others every step; rank 0 alone evaluates (val loss
  and rollouts), logs, saves ``last``/``best``, calls the hooks and writes summary.json.
- **Resume** as a single process does: every rank loads ``checkpoints/last``.
- Backend: gloo on the CPU, NCCL on CUDA (one GPU a rank: ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from il_ros.training.inputs import TrainInputError
from il_ros.training.trainer import Trainer


def world_size() -> int:
    """Processes of this run as torchrun set them (1 outside torchrun)."""
    return int(os.environ.get('WORLD_SIZE', '1'))


def train(cfg, out_dir, dataset=None, **hooks) -> dict:
    """Train as this process's rank when torchrun started several, else as one process."""
    cls = DistTrainer if world_size() > 1 else Trainer
    return cls(cfg, out_dir, dataset, **hooks).run()


class _Loss(torch.nn.Module):
    """The policy's loss as a forward, which is what DDP wraps and synchronizes."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, batch):
        return self.policy.loss(batch)


def check_batch_divides(batch_size: int, world: int) -> None:
    """Raise TrainInputError unless the global ``batch_size`` splits evenly over ``world``."""
    if batch_size % world:
        raise TrainInputError(f'batch_size {batch_size} does not divide by the {world} '
                              f'processes; use a multiple of {world}')


class _Shard(torch.utils.data.Sampler):
    """This rank's contiguous part of each global batch of a batch sampler."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            n = len(batch) // self.world
            yield batch[self.rank * n:(self.rank + 1) * n]

    def __len__(self):
        return len(self.batches)


class DistTrainer(Trainer):
    """:class:`Trainer` as one rank of a DDP run (see the module doc)."""

    def __init__(self, cfg, out_dir, dataset=None, **hooks):
        """Join the process group that torchrun set up (gloo on CPU, NCCL on CUDA)."""
        self.rank, self.world = int(os.environ['RANK']), world_size()
        check_batch_divides(cfg.batch_size, self.world)
        if self.rank != 0:       # only rank 0 reports; the others keep quiet
            hooks = {'should_stop': hooks.get('should_stop'), 'on_message': lambda line: None}
            cfg = type(cfg)(**{**cfg.to_dict(), 'progress': False})
        super().__init__(cfg, out_dir, dataset, **hooks)
        asked = self.should_stop
        self.should_stop = lambda: self._rank0(asked())     # rank 0's stop, on every rank
        if self.device.type == 'cuda':
            self.device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
        self.is_main = self.rank == 0

    def _build(self) -> None:
        if not self.is_main:
            dist.barrier()                   # rank 0 recovers interrupted saves first
        super()._build()
        if self.is_main:
            dist.barrier()
        self._loss = torch.nn.parallel.DistributedDataParallel(_Loss(self.policy))

    def _batches(self, batches):
        return _Shard(batches, self.rank, self.world)

    def _rank0(self, value: bool) -> bool:
        flag = torch.tensor([int(bool(value))], device=self._comm_device)
        dist.broadcast(flag, 0)
        return bool(flag.item())

    @property
    def _comm_device(self):
        return self.device if self.device.type == 'cuda' else torch.device('cpu')

    def _budget_left(self) -> bool:
        return self._rank0(super()._budget_left())

    def _eval_due(self, next_eval_s: float) -> bool:
        return self._rank0(super()._eval_due(next_eval_s))

    def _train_step(self, batch: dict) -> tuple[float, float]:
        loss, gn = super()._train_step(batch)
        mean = torch.tensor([loss], device=self._comm_device)
        dist.all_reduce(mean)                # the logged loss: the global batch's
        return float(mean.item()) / self.world, gn

    def _evaluate(self, bar) -> None:
        if self.is_main:
            super()._evaluate(bar)

    def _log_window(self, window: dict) -> None:
        if self.is_main:
            super()._log_window(window)
        else:
            window.update(loss=[], gn=[], t=0.0)

    def _write_checkpoint(self, name, entry, trainer_state):
        if self.is_main:
            return super()._write_checkpoint(name, entry, trainer_state)
        return self.ckpt_dir / name

    def _open_run(self) -> None:
        dist.barrier()                       # every rank has read the run's config.yaml
        if self.is_main:
            super()._open_run()
        else:
            self.log = None

    def _summary(self, status: str, steps: int, secs: float) -> dict:
        summary = (super()._summary(status, steps, secs) if self.is_main
                   else {'status': status, 'step': self.step, 'rank': self.rank})
        dist.barrier()                       # rank 0 has written summary.json
        return summary

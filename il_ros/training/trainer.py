"""The training loop: AdamW, warmup + cosine LR, gradient clipping, EMA, periodic rollouts.

Run folder (``out_dir``)::

    config.yaml             the TrainConfig (every field)
    log.csv, curves.png     see il_ros.training.logbook
    checkpoints/last/       policy checkpoint + trainer state (resumable, see state.py)
    checkpoints/best/       the best checkpoint so far (rollout success, ties: val loss)
    summary.json            status, throughput, the best and final evaluations, the dataset
                            check (episodes checked, skipped; il_ros.training.inputs)

Resuming: calling :func:`train` again on the same folder continues from ``checkpoints/last``
(same config apart from the budget fields). The batch order is a function of (seed, step)
and every random stream is restored, so a run interrupted at a save point and resumed gives
the same weights as an uninterrupted one (for a ``max_steps`` budget; a ``max_minutes``
budget drives the LR schedule by elapsed time, which no run repeats exactly). Validation and
rollouts run on forked RNG streams (state.rng_fork), so evaluating never changes training.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
import shutil
import sys
import time
from typing import Callable

import numpy as np
import torch

from il_ros.data.sampler import split_episodes, WindowDataset
from il_ros.data.store import StoreError
from il_ros.training import state as st
from il_ros.training.config import (config_differences, resolve_policy_config,
                                    save_train_config, selection_score, TrainConfig)
from il_ros.training.device import on_cpu, resolve_device, to_device
from il_ros.training.evaluate import validation_loss
from il_ros.training.inputs import (check_run_dir, DatasetError, open_checked_dataset,
                                    TrainError, TrainInputError)
from il_ros.training.logbook import Logbook
from il_ros.training.parallel_eval import evaluate_with
from il_ros.training.schedule import EpochSampler, eta_s, lr_at
from il_ros.training.spec import dataset_robot, spec_from_dataset
from il_ros.training.weighting import label_counts, scheme_weights


class Trainer:
    """One training run in ``out_dir`` (see the module doc); call :meth:`run`."""

    def __init__(self, cfg: TrainConfig, out_dir, dataset=None, *,
                 on_checkpoint: Callable[[str], None] | None = None,
                 on_progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_message: Callable[[str], None] | None = None):
        """Prepare the run; ``dataset`` overrides ``cfg.dataset``.

        Hooks: ``on_checkpoint(path)`` after each new best checkpoint; ``on_progress(dict)``
        at every log row and evaluation (keys: state, step, max_steps, loss, lr, val_loss,
        success_rate, best_success, train_s, eta_s, samples_per_s, run_dir);
        ``should_stop()`` polled every step: True saves ``last`` and returns;
        ``on_message(line)`` for warnings (skipped episodes; default: stderr).
        Raises TrainInputError (DatasetError for the dataset) naming a bad input.
        """
        if dataset is not None:
            cfg = TrainConfig(**{**cfg.to_dict(), 'dataset': str(dataset)})
        if not cfg.dataset:
            raise TrainInputError('no dataset: pass --dataset (or set dataset: in the config)')
        self.cfg = cfg
        self.out = check_run_dir(out_dir)
        self.ckpt_dir = self.out / 'checkpoints'
        self.on_checkpoint, self.on_progress = on_checkpoint, on_progress
        self.should_stop = should_stop or (lambda: False)
        self.say = on_message or (lambda line: print(line, file=sys.stderr, flush=True))
        if cfg.init_checkpoint and not Path(cfg.init_checkpoint).is_dir():
            raise TrainInputError(f'init_checkpoint {cfg.init_checkpoint}: no such folder')
        self.data = open_checked_dataset(cfg.dataset, cfg.skip_bad_episodes, self.say)
        self.ds = self.data.ds
        self.pcfg = resolve_policy_config(cfg.policy)
        if cfg.bf16 is not None:
            self.pcfg = dataclasses.replace(self.pcfg, bf16=cfg.bf16, channels_last=cfg.bf16)
        self.spec = spec_from_dataset(self.ds, self.pcfg, cfg.eval_task)
        self.robot = dataset_robot(self.ds)          # its description, or None
        try:
            self.device = resolve_device(cfg.device)
        except ValueError as e:
            raise TrainInputError(str(e)) from None

    # ---- setup ---------------------------------------------------------------------------
    def _build(self) -> None:
        from il_ros.models import build_policy, load_checkpoint
        cfg, last = self.cfg, self.ckpt_dir / 'last'
        for d in (last, self.ckpt_dir / 'best'):
            st.recover_dir(d)
        self.resumed = st.has_trainer_state(last)
        st.seed_everything(cfg.seed)
        stats = self.data.policy_stats(self.pcfg, self.spec)
        if self.resumed:
            self._check_same_run()
            self.policy, _ = load_checkpoint(last, expect=self.spec, use_ema=False)
            tensors, info = st.read_trainer_state(last)
        elif cfg.init_checkpoint:
            self.policy = self._warm_start(cfg.init_checkpoint)
            tensors, info = {}, {}
        else:
            self.policy = build_policy(self.pcfg, self.spec, stats)
            tensors, info = {}, {}
        self.ema = None
        if cfg.ema_decay > 0:
            if self.resumed:
                shadow = load_checkpoint(last, expect=self.spec, use_ema=True)[0]
            elif cfg.init_checkpoint:
                shadow = self._warm_start(cfg.init_checkpoint)
            else:
                shadow = build_policy(self.pcfg, self.spec, stats)
                shadow.load_state_dict(self.policy.state_dict())
            self.ema = st.Ema(shadow.to(self.device), cfg.ema_decay)
        self.policy.to(self.device)
        self._loss = self.policy.loss               # a DDP rank wraps it (distributed.py)
        if self.device.type == 'cuda':
            self.say(f'training on {self.device} ({torch.cuda.get_device_name(self.device)})')
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        fp16 = self.policy.encoder.precision(self.device.type) == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)  # no-op unless fp16
        self.step = int(info.get('step', 0))
        self.train_s = float(info.get('train_s', 0.0))
        self.wall_before = float(info.get('wall_s', 0.0))
        self.best = info.get('best')            # {'step', 'score', 'success_rate', ...}
        self.evals = list(info.get('evals', []))
        self.finished = bool(info.get('finished', False))
        if self.resumed:
            st.load_optimizer_state(self.opt, tensors, info['optimizer'])
            if fp16 and info.get('grad_scaler'):
                self.scaler.load_state_dict(info['grad_scaler'])
        for policy in (self.policy, *([self.ema.shadow] if self.ema is not None else [])):
            policy.preprocess = self.data.preprocess      # saved with every checkpoint
        self._data()
        if self.resumed:
            st.set_rng_state(tensors, info['rng'])

    def _warm_start(self, path):
        """Return the policy of checkpoint ``path``, in training mode.

        With its EMA weights when it has them, and its normalizers; TrainError when its
        config or robot differ from this run's.
        """
        from il_ros.models import CheckpointMismatch, load_checkpoint
        try:
            policy, _ = load_checkpoint(path, expect=self.spec, use_ema=True)
        except (CheckpointMismatch, FileNotFoundError, ValueError) as e:
            raise TrainError(f'init_checkpoint: {e}') from None
        have, want = policy.cfg.to_dict(), self.pcfg.to_dict()
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if diff:
            raise TrainError(f'init_checkpoint {path}: its policy config differs from this '
                             f'run\'s in {", ".join(diff)}; use the same policy config')
        return policy.train()

    def _check_same_run(self) -> None:
        from il_ros.config import load_yaml
        saved = load_yaml(self.out / 'config.yaml') or {}
        diff = config_differences(saved, self.cfg.to_dict())
        if diff:
            raise TrainError(
                f'{self.out} holds a run with a different config ({", ".join(diff)} differ); '
                f'use another --out, or delete {self.ckpt_dir / "last"} to start over')

    def _data(self) -> None:
        cfg, spec = self.cfg, self.policy.sampler_spec()
        train_eps, val_eps = split_episodes(self.ds.num_episodes, cfg.val_fraction, cfg.seed)
        good = set(self.data.good)      # the split stays the same with episodes skipped
        train_eps, val_eps = ([e for e in eps if e in good] for eps in (train_eps, val_eps))
        self.counts = label_counts(self.ds, train_eps)
        self.label_weights = (None if cfg.weighting == 'uniform' and not cfg.label_weights
                              else scheme_weights(cfg.weighting, self.counts,
                                                  cfg.label_weights, cfg.pre_intervention_weight,
                                                  cfg.max_intervention_share))
        common = dict(label_weights=self.label_weights, cache=cfg.cache,
                      chunk_by_source=cfg.chunks_within_control, **spec)
        self.train_set = WindowDataset(self.ds, episodes=train_eps, **common)
        self.val_set = WindowDataset(self.ds, episodes=val_eps, **common) if val_eps else None
        # Samples whose label weight is 0 are never drawn: left in, they would take batch
        # slots and dilute the loss of the rest (docs/experiments/hg-dagger.md).
        active = np.flatnonzero(self.train_set.sample_weights > 0)
        if len(active) < cfg.batch_size:
            raise TrainError(f'{len(active)} training samples with a weight above 0 (of '
                             f'{len(self.train_set)}) are fewer than batch_size '
                             f'{cfg.batch_size}; lower batch_size or add episodes')
        self.sampler = sampler = EpochSampler(
            len(self.train_set), cfg.batch_size, cfg.seed, self.step,
            indices=None if len(active) == len(self.train_set) else active)
        # As make_loader (whole batches per fetch), plus the loader's own generator: starting
        # an iterator draws a worker seed, and from the global stream that draw would shift
        # every later random number of a resumed run.
        self.loader = torch.utils.data.DataLoader(
            self.train_set, batch_size=None, num_workers=cfg.num_workers,
            sampler=self._batches(torch.utils.data.BatchSampler(sampler, cfg.batch_size,
                                                                drop_last=True)),
            persistent_workers=cfg.num_workers > 0, pin_memory=self.device.type == 'cuda',
            generator=torch.Generator().manual_seed(cfg.seed))

    def _batches(self, batches):
        """The index lists this process trains on (a DDP rank takes its share of each)."""
        return batches

    # ---- the loop ------------------------------------------------------------------------
    def _budget_left(self) -> bool:
        cfg = self.cfg
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return False
        return cfg.max_minutes is None or self.train_s < 60.0 * cfg.max_minutes

    def _eval_due(self, next_eval_s: float) -> bool:
        cfg = self.cfg
        return bool((cfg.eval_every_steps and self.step % cfg.eval_every_steps == 0)
                    or (cfg.eval_every_minutes and self.train_s >= next_eval_s))

    def run(self) -> dict:
        """Train until the budget is spent (or a stop); returns the summary (summary.json)."""
        cfg = self.cfg
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainInputError(f'run folder {self.out}: {e.strerror or e}') from None
        try:
            self._build()
        except StoreError as e:
            raise DatasetError(str(e)) from None
        if (self.finished and not self._budget_left()
                and (self.out / 'summary.json').is_file()):
            return json.loads((self.out / 'summary.json').read_text())
        self._open_run()
        self.wall0 = time.monotonic()
        session_steps, session_s = 0, 0.0
        window = {'loss': [], 'gn': [], 't': 0.0}
        eval_period = 60.0 * (cfg.eval_every_minutes or math.inf)
        next_eval_s = (math.floor(self.train_s / eval_period) + 1) * eval_period
        last_save = time.monotonic()
        status = 'done'
        bar = self._bar()
        it = iter(self.loader)
        self.policy.train()
        try:
            while self._budget_left():
                if self.should_stop():
                    status = 'stopped'
                    break
                t0 = time.perf_counter()
                loss, gn = self._train_step(next(it))
                dt = time.perf_counter() - t0
                self.train_s += dt
                session_s += dt
                session_steps += 1
                window['loss'].append(loss)
                window['gn'].append(gn)
                window['t'] += dt
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    self._log_window(window)
                    bar.set_postfix(loss=f'{loss:.4g}', refresh=False)
                if self._eval_due(next_eval_s):
                    next_eval_s = (math.floor(self.train_s / eval_period) + 1) * eval_period
                    self._evaluate(bar)
                    last_save = time.monotonic()
                elif time.monotonic() - last_save > 60.0 * cfg.save_every_minutes:
                    self._save_last()
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            status = 'interrupted'
        except StoreError as e:         # a damaged file of an episode without a checksum
            raise DatasetError(f'{e} (while training, at step {self.step})') from None
        finally:
            bar.close()
        if window['loss']:
            self._log_window(window)
        if status == 'done' and (not self.evals or self.evals[-1]['step'] != self.step):
            self._evaluate(None)
        self.finished = status == 'done'
        self._save_last()
        del it
        return self._summary(status, session_steps, session_s)

    def _open_run(self) -> None:            # a DDP rank other than 0 writes nothing
        save_train_config(self.cfg, self.out / 'config.yaml')
        self.log = Logbook(self.out, self.step if self.resumed else None)

    def _train_step(self, batch: dict) -> tuple[float, float]:
        cfg = self.cfg
        lr = lr_at(cfg, self.step, self.train_s)
        for g in self.opt.param_groups:
            g['lr'] = lr
        loss = self._loss(to_device(batch, self.device))
        if not torch.isfinite(loss):
            eps = sorted({self.train_set.episode_and_frame(i)[0]
                          for i in self.sampler.batch(self.step)})
            raise TrainError(f'loss is {loss.item()} at step {self.step} (lr {lr:.3g}) on a '
                             f'batch from episodes {eps} of {self.ds.path} (checked finite '
                             'and within their recorded bounds); lower lr or set grad_clip')
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()          # float16 encoders: a scaled loss
        gn = float('nan')
        if cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            gn = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip))
        self.scaler.step(self.opt)                  # skipped when a gradient is not finite
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.policy, self.step)
        self.step += 1
        self._lr = lr
        return float(loss.detach()), gn

    def _log_window(self, window: dict) -> None:
        n = len(window['loss'])
        if n == 0:
            return
        sps = self.cfg.batch_size * n / max(window['t'], 1e-9)
        self.log.write(step=self.step, time_s=round(self.train_s, 3), wall_s=self._wall(),
                       lr=self._lr, train_loss=float(np.mean(window['loss'])),
                       grad_norm=float(np.nanmean(window['gn'])) if self.cfg.grad_clip
                       else None, samples_per_s=round(sps, 1))
        self._last_loss, self._sps = float(np.mean(window['loss'])), sps
        window.update(loss=[], gn=[], t=0.0)
        self._progress('training')

    def _wall(self) -> float:
        return round(self.wall_before + time.monotonic() - self.wall0, 3)

    @property
    def eval_policy(self):
        """The weights that are evaluated, selected and deployed (EMA when enabled)."""
        return self.ema.shadow if self.ema is not None else self.policy

    # ---- evaluation and checkpoints ------------------------------------------------------
    def _val_loss(self) -> float | None:
        if self.val_set is None:
            return None
        return validation_loss(self.eval_policy, self.val_set, self.cfg.batch_size,
                               self.cfg.val_batches, self.cfg.seed, self.device)

    def _evaluate(self, bar) -> None:
        cfg = self.cfg
        with st.rng_fork(cfg.seed + 7919 * self.step):
            val = self._val_loss()
            res = (evaluate_with(cfg.eval_workers, on_cpu(self.eval_policy), cfg.eval_task,
                                 cfg.eval_episodes, seed=cfg.eval_seed, progress=False,
                                 max_steps=cfg.eval_max_steps, robot=self.robot)
                   if cfg.eval_task else None)
        success = res['success_rate'] if res else None
        score = selection_score(cfg.selection, success, val)
        entry = {'step': self.step, 'train_s': round(self.train_s, 2), 'val_loss': val,
                 'success_rate': success, 'score': list(score)}
        if res:
            entry['eval'] = {k: v for k, v in res.items() if k != 'per_episode'}
        self.evals.append(entry)
        is_best = self.best is None or tuple(score) >= tuple(self.best['score'])
        self.log.write(step=self.step, time_s=round(self.train_s, 3), wall_s=self._wall(),
                       val_loss=val, success_rate=success, best=1 if is_best else None)
        if is_best:
            self.best = entry
            self._save_best(entry)
        self._save_last()
        self.log.plot(f'{Path(cfg.dataset).name}: {self._policy_name()}')
        if bar is not None:
            bar.set_postfix(loss=f'{getattr(self, "_last_loss", math.nan):.4g}',
                            val=f'{val:.4g}' if val is not None else '-',
                            success=f'{success:.2f}' if success is not None else '-')
        self._progress('training')

    def _policy_name(self) -> str:
        p = self.cfg.policy
        return p if isinstance(p, str) else str(p.get('preset', 'custom'))

    def _extra(self, entry: dict | None) -> dict:
        return {'step': self.step, 'train_config': self.cfg.to_dict(),
                'dataset': str(Path(self.cfg.dataset).resolve()),
                'evaluation': entry, 'robot': self.robot and self.robot.to_dict()}

    def _write_checkpoint(self, name: str, entry: dict | None, trainer_state: bool) -> Path:
        from il_ros.models import save_checkpoint
        final = self.ckpt_dir / name
        tmp = final.with_name(name + '.tmp')
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        ema_state = self.ema.shadow.state_dict() if self.ema is not None else None
        save_checkpoint(self.policy, tmp, extra=self._extra(entry), ema_state=ema_state)
        if trainer_state:
            st.write_trainer_state(tmp, self.opt, {
                'step': self.step, 'train_s': self.train_s, 'wall_s': self._wall(),
                'best': self.best, 'evals': self.evals, 'finished': self.finished,
                'grad_scaler': self.scaler.state_dict() or None})
        st.replace_dir(tmp, final)
        return final

    def _save_best(self, entry: dict) -> None:
        path = self._write_checkpoint('best', entry, trainer_state=False)
        if self.on_checkpoint is not None:
            self.on_checkpoint(str(path.resolve()))

    def _save_last(self) -> None:
        self._write_checkpoint('last', self.evals[-1] if self.evals else None, True)

    # ---- reporting -----------------------------------------------------------------------
    def _progress(self, state: str) -> None:
        if self.on_progress is None:
            return
        last = self.evals[-1] if self.evals else {}
        self.on_progress({
            'state': state, 'step': self.step, 'max_steps': self.cfg.max_steps,
            'loss': getattr(self, '_last_loss', None), 'lr': getattr(self, '_lr', None),
            'val_loss': last.get('val_loss'), 'success_rate': last.get('success_rate'),
            'best_success': (self.best or {}).get('success_rate'),
            'train_s': round(self.train_s, 1), 'eta_s': eta_s(self.cfg, self.step, self.train_s),
            'samples_per_s': round(getattr(self, '_sps', 0.0), 1), 'run_dir': str(self.out)})

    def _bar(self):
        from tqdm import tqdm
        return tqdm(total=self.cfg.max_steps, initial=self.step, unit='step', leave=False,
                    desc=f'train {self._policy_name()}', disable=not self.cfg.progress,
                    dynamic_ncols=True)

    def _summary(self, status: str, steps: int, secs: float) -> dict:
        best = dict(self.best or {})
        if best:
            best['path'] = str((self.ckpt_dir / 'best').resolve())
        summary = {
            'status': status, 'step': self.step, 'train_s': round(self.train_s, 2),
            'device': str(self.device), 'world_size': getattr(self, 'world', 1),
            'wall_s': self._wall(),
            'samples_per_s': round(self.cfg.batch_size * steps / max(secs, 1e-9), 1),
            'session_steps': steps, 'resumed': self.resumed, 'selection': self.cfg.selection,
            'best': best, 'final': self.evals[-1] if self.evals else None,
            'evals': self.evals, 'dataset': str(Path(self.cfg.dataset).resolve()),
            'train_samples': len(self.train_set),
            'val_samples': len(self.val_set) if self.val_set is not None else 0,
            'label_counts': self.counts, 'label_weights': self.label_weights,
            'dataset_check': self.data.summary(),
            'last': str((self.ckpt_dir / 'last').resolve())}
        (self.out / 'summary.json').write_text(json.dumps(summary, indent=1, default=str))
        return summary


def train(cfg: TrainConfig, out_dir, dataset=None, **hooks) -> dict:
    """Run (or resume) a training run in ``out_dir``; see :class:`Trainer` for the hooks."""
    return Trainer(cfg, out_dir, dataset, **hooks).run()

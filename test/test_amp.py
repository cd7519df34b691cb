"""Mixed precision of the image encoders (il_ros.models.obs_encoder.autocast_dtype).

- the rules: bfloat16 where the device computes it natively, float16 on other CUDA GPUs
  (forced with ``policy.amp_dtype=float16``), float32 elsewhere; a bad name is refused by
  the policy config;
- on the CPU the trainer's GradScaler stays off (a plain float32 or bfloat16 step);
- on a CUDA machine (skipped elsewhere, with the reason): a float16 run's encoders compute
  in float16, its loss is scaled, the scaler's state is saved with ``last`` and restored on
  resume; 'auto' on a bfloat16 GPU takes bfloat16 and no scaler.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from il_ros.models.obs_encoder import autocast_dtype, bf16_is_native
from il_ros.models.presets import preset
from il_ros.training.trainer import train, Trainer

from test_training import make_sim_dataset, tiny_cfg  # noqa: I100

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason='needs a CUDA GPU (PyTorch sees none here)')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_sim_dataset(tmp_path_factory.mktemp('ds') / 'lift', episodes=3)


def test_autocast_rules():
    native = torch.bfloat16 if bf16_is_native('cpu') else None
    assert autocast_dtype('cpu') is native
    assert autocast_dtype('cpu', 'bfloat16') is native
    assert autocast_dtype('cpu', 'float16') is None          # CPUs emulate float16
    assert autocast_dtype('mps', 'auto') is None
    with pytest.raises(ValueError, match='amp_dtype must be one of auto, bfloat16, float16'):
        autocast_dtype('cpu', 'fp8')
    with pytest.raises(ValueError, match="PolicyConfig: amp_dtype must be one of .* 'half'"):
        dataclasses.replace(preset('none_mse'), amp_dtype='half')
    off = dataclasses.replace(preset('none_mse'), bf16=False)
    assert off.bf16 is False and preset('none_mse').amp_dtype == 'auto'


def test_the_cpu_trains_without_a_grad_scaler(dataset, tmp_path):
    cfg = tiny_cfg(dataset, max_steps=3, warmup_steps=1, device='cpu', bf16=True)
    cfg.policy = {**cfg.policy, 'amp_dtype': 'float16'}
    t = Trainer(cfg, tmp_path / 'run')
    t._build()
    assert t.policy.encoder.precision('cpu') is None and not t.scaler.is_enabled()


def _encoder_dtypes(policy) -> list:
    seen = []
    for enc in policy.encoder.image_encoders.values():
        enc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


@CUDA
def test_float16_on_cuda_scales_the_loss_and_resumes_the_scale(dataset, tmp_path):
    cfg = tiny_cfg(dataset, max_steps=12, warmup_steps=1, device='cuda', bf16=True)
    cfg.policy = {**cfg.policy, 'amp_dtype': 'float16'}
    t = Trainer(cfg, tmp_path / 'probe')
    t._build()
    assert t.scaler.is_enabled() and t.policy.encoder.precision('cuda') == torch.float16
    seen = _encoder_dtypes(t.policy)
    loss, _ = t._train_step(t.train_set.batch(list(range(8))))
    assert seen and set(seen) == {torch.float16} and loss == loss
    s = train(cfg, tmp_path / 'run')
    assert s['status'] == 'done' and s['step'] == 12
    state = json.loads((tmp_path / 'run' / 'checkpoints' / 'last' /
                        'trainer_state.json').read_text())
    scale = state['grad_scaler']['scale']
    assert 0 < scale <= 65536.0
    again = dataclasses.replace(cfg, max_steps=14)
    r = Trainer(again, tmp_path / 'run')
    r._build()
    assert r.resumed and r.scaler.get_scale() == scale
    s2 = train(again, tmp_path / 'run')
    assert s2['step'] == 14 and s2['resumed']


@CUDA
def test_auto_on_a_bf16_gpu_takes_bfloat16_without_a_scaler(dataset, tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip('this GPU has no bfloat16: auto takes float16 (the test above)')
    t = Trainer(tiny_cfg(dataset, max_steps=2, warmup_steps=1, device='cuda', bf16=True),
                tmp_path / 'run')
    t._build()
    assert t.policy.encoder.precision('cuda') == torch.bfloat16 and not t.scaler.is_enabled()
    seen = _encoder_dtypes(t.policy)
    t._train_step(t.train_set.batch(list(range(8))))
    assert set(seen) == {torch.bfloat16}

"""Where a policy acts: the CPU (default) or a CUDA GPU (Policy, the heads, eval, controller).

- on the CPU (always): ``il-ros eval --device`` parses and refuses a bad or missing device
  naming ``--device``; ``evaluate_checkpoint(device=...)`` records where it ran; the
  controller's ``device`` parameter and the policy slot refuse a device the machine lacks;
  a seeded act is exactly what the heads' sampling gave before act-time draws moved to the
  generator's device (references of the earlier code below), for each random head;
- on a CUDA machine (skipped elsewhere, with the reason): a policy moved to the GPU acts like
  its CPU twin from the same seed, for each head; ``evaluate_checkpoint(device='cuda')``
  runs; the slot loads a checkpoint onto the GPU and plans there.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_sim_checkpoint
from il_ros.models import build_policy
from il_ros.models.heads.gaussian import gaussian_log_prob
from il_ros.training.evaluate import evaluate_checkpoint
from il_ros.training.spec import sim_spec

from test_policy import tiny_cfg  # noqa: I100

torch.set_num_threads(1)          # tiny models
CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason='needs a CUDA GPU (PyTorch sees none)')
HW = 24                           # > test_policy's crop (20)

CASES = {
    # case: (preset, overrides); every head that draws at act time, with its random mode
    'gaussian': ('none_gaussian', {'head': {'sample_mode': 'sample'}}),
    'gmm': ('none_gmm', {'head': {'sample_mode': 'sample', 'binary_dims': [-1]}}),
    'gmm_sticky': ('lstm_gmm', {'relative_actions': True, 'action_horizon': 4,
                                'action_exec': 2}),
    'diffusion': ('diffusion', {}),
}
RANDOM = ('gaussian', 'gmm', 'diffusion')
"""Cases whose actions depend on the seed (gmm_sticky takes the mode mean)."""


def tiny_policy(case: str, seed: int = 0):
    """A random-init tiny policy of ``case`` for the sim arm (float32: no bf16 autocast)."""
    name, over = CASES[case]
    torch.manual_seed(seed)
    spec = sim_spec('lift')
    spec.image_size = (HW, HW)
    a, j = spec.action_dim, spec.proprio_dim
    stats = {'action': {'min': [-0.5] * a, 'max': [0.5] * a},
             'joint_pos': {'mean': [0.0] * j, 'std': [0.5] * j},
             'image/front': {'mean': [0.5] * 3, 'std': [0.25] * 3}}
    policy = build_policy(tiny_cfg(name, bf16=False, **over), spec, stats)
    return policy.eval()


def observations(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{'image/front': rng.integers(0, 256, (HW, HW, 3), dtype=np.uint8),
             'joint_pos': rng.normal(0.0, 0.3, 7)} for _ in range(n)]


def acts(policy, obs, seed: int) -> np.ndarray:
    policy.reset(seed=seed)
    return np.stack([policy.act(o) for o in obs])


# ------------------------------------------------- the heads' sampling before this change
def _old_gaussian(head, features, generator=None):
    mean, std = head(features)
    if head.cfg.sample_mode == 'mean':
        return mean
    noise = torch.randn(mean.shape, generator=generator, device=mean.device)
    return mean + std * noise


def _old_gmm(head, features, generator=None, prior=None):
    logits, means, stds, binary = head.outputs(features)
    rows = torch.arange(features.shape[0], device=features.device)
    if head.cfg.sample_mode == 'mode_mean':
        score = F.log_softmax(logits, -1)
        if prior is not None and head.cfg.sticky and prior.shape[1] > 0:
            p = prior.shape[1]
            score = score + gaussian_log_prob(prior[:, None, :, head.continuous],
                                              means[:, :, :p], stds[:, :, :p]).sum((-2, -1))
        cont = means[rows, score.argmax(-1)]
        switch = None if binary is None else binary > 0
    else:
        idx = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
        mean, std = means[rows, idx], stds[rows, idx]
        cont = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
        switch = None if binary is None else \
            torch.rand(binary.shape, generator=generator, device=binary.device) < \
            binary.sigmoid()
    if switch is None:
        return cont
    out = cont.new_empty(cont.shape[:2] + (head.action_dim,))
    out[..., head.continuous] = cont
    out[..., head.binary] = switch.to(cont.dtype) * 2 - 1
    return out


def _old_diffusion(head, features, generator=None, num_inference_steps=None):
    n = features.shape[0]
    x = torch.randn((n, head.horizon, head.action_dim), generator=generator,
                    device=features.device)
    steps = head.schedule.ddim_timesteps(num_inference_steps or head.cfg.num_inference_steps)
    for i, t in enumerate(steps):
        prev = steps[i + 1] if i + 1 < len(steps) else -1
        tt = torch.full((n,), t, device=features.device, dtype=torch.long)
        eps = head.schedule.to_epsilon(head.cfg.prediction_type,
                                       head.unet(x, tt, features), t, x)
        x = head.schedule.ddim_step(eps, t, x, prev)
    return x


OLD = {'gaussian': _old_gaussian, 'gmm': _old_gmm, 'diffusion': _old_diffusion}


@pytest.mark.parametrize('case', list(CASES))
def test_seeded_cpu_actions_are_those_of_the_earlier_sampling(case):
    policy = tiny_policy(case)
    obs = observations(10)
    new = acts(policy, obs, seed=7)
    assert new.dtype == np.float64 and np.isfinite(new).all()
    assert policy.device == torch.device('cpu')
    head = policy.head
    old_sample = OLD[policy.cfg.head['name']]
    features = torch.randn(3, policy.core.out_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for gen in (lambda: torch.Generator().manual_seed(3), lambda: None):   # own / global
            torch.manual_seed(3)
            a = head.sample(features, generator=gen())
            torch.manual_seed(3)
            b = old_sample(head, features, generator=gen())
            assert torch.equal(a, b)
    head.sample = lambda f, **kw: old_sample(head, f, **kw)
    np.testing.assert_array_equal(acts(policy, obs, seed=7), new)
    if case in RANDOM:                          # the seed matters: the check is not vacuous
        assert not np.array_equal(acts(policy, obs, seed=8), new)


# ----------------------------------------------------------------------- eval and the CLI
def test_eval_cli_parses_device_and_refuses_a_bad_one(tmp_path, capsys, monkeypatch):
    import json

    from il_ros.train_cli import add_eval_parser, main
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    base = ['eval', '--checkpoint', str(tmp_path / 'none'), '--task', 'lift']
    assert parser.parse_args(base).device == 'cpu'                     # today's behaviour
    assert parser.parse_args(base + ['--device', 'cuda:1']).device == 'cuda:1'
    assert main(base + ['--device', 'gpu']) == 2
    err = capsys.readouterr().err
    assert "il-ros eval: --device must be auto, cpu, cuda or cuda:N, got 'gpu'" in err
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, 'is_available', lambda: False)
        assert main(base + ['--device', 'cuda']) == 2
        err = capsys.readouterr().err
        assert 'il-ros eval: --device cuda: PyTorch sees no CUDA GPU here' in err
        assert 'use --device auto or cpu' in err
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', image_size=(32, 32))
    assert main(['eval', '--checkpoint', ckpt, '--task', 'lift', '--episodes', '1',
                 '--max-steps', '3', '--json', '--device', 'cpu']) == 0
    assert json.loads(capsys.readouterr().out)['device'] == 'cpu'


def test_evaluate_checkpoint_records_the_device(tmp_path):
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', image_size=(32, 32))
    res = evaluate_checkpoint(ckpt, 'lift', episodes=1, max_steps=3, progress=False,
                              device='cpu')
    assert res['device'] == 'cpu' and res['episodes'] == 1
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'tpu'"):
        evaluate_checkpoint(ckpt, 'lift', episodes=1, progress=False, device='tpu')


# ---------------------------------------------------------------- the controller's device
def _slot(device: str):
    from il_ros.control.slot import PolicySlot, RobotOverrides
    from il_ros.robot import load_robot
    robot = load_robot()
    over = RobotOverrides(rate_hz=robot.control_rate_hz, joint_names=robot.joint_names,
                          action_names=robot.action_names, robot=robot)
    return PolicySlot(over, lambda a, j: None, device=device)


def _warm_obs(policy) -> dict:
    h, w = policy.spec.image_size
    return {'image/front': np.full((h, w, 3), 128, np.uint8), 'joint_pos': np.zeros(7)}


def test_the_controller_device_parameter_is_checked_at_start_up(monkeypatch):
    pytest.importorskip('rclpy')
    from il_ros.robot import load_robot
    from il_ros.ros.controller_params import BY_NAME, check, PARAMS, RUNTIME
    from il_ros.ros.node_utils import ParameterError
    p = BY_NAME['device']
    assert p.default == 'cpu' and 'device' not in RUNTIME and 'cuda:N' in p.description
    values = {q.name: q.default for q in PARAMS}
    values['robot_description'] = robot = load_robot(values['robot'])
    values['rate_hz'] = robot.control_rate_hz
    assert check(values) is False
    with pytest.raises(ParameterError, match=r"^parameter device='gpu': device must be auto, "
                                             r"cpu, cuda or cuda:N, got 'gpu'$"):
        check({**values, 'device': 'gpu'})
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ParameterError, match=r"^parameter device='cuda:0': device cuda:0: "
                                             r"PyTorch sees no CUDA GPU"):
        check({**values, 'device': 'cuda:0'})


def test_the_slot_loads_on_its_device_and_refuses_a_missing_one(tmp_path, monkeypatch):
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', image_size=(32, 32))
    slot = _slot('cpu')
    loaded = slot.load_now(ckpt)
    assert slot.device == loaded.policy.device == torch.device('cpu')
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        _slot('gpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='device cuda: PyTorch sees no CUDA GPU'):
        _slot('cuda')
    assert _slot('auto').device == torch.device('cpu')


# ------------------------------------------------------------------------- on a CUDA GPU
@pytest.fixture
def exact_fp32():
    """No TF32 in CUDA matmuls and convolutions, so the GPU computes like the CPU."""
    was = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = was


@CUDA
@pytest.mark.parametrize('case', list(CASES))
def test_a_policy_on_the_gpu_acts_like_its_cpu_twin(case, exact_fp32):
    cpu, gpu = tiny_policy(case), tiny_policy(case).to('cuda')
    assert gpu.device.type == 'cuda' and cpu.device.type == 'cpu'
    assert all(p.device.type == 'cuda' for p in gpu.parameters())
    obs = observations(12)
    a, b = acts(cpu, obs, seed=7), acts(gpu, obs, seed=7)       # the same CPU noise stream
    assert b.dtype == np.float64 and np.isfinite(b).all()
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)
    for p in (cpu, gpu):
        p.reset(seed=9)
    chunk = gpu.act_chunk(obs[0])
    assert isinstance(chunk, np.ndarray) and chunk.shape == (gpu.cfg.action_exec, 6)
    np.testing.assert_allclose(chunk, cpu.act_chunk(obs[0]), rtol=1e-3, atol=1e-3)
    if case in RANDOM:                          # the seed still matters on the GPU
        assert not np.allclose(acts(gpu, obs, seed=8), b, rtol=1e-3, atol=1e-3)
    back = gpu.to('cpu')                        # and it comes back (the device cache follows)
    assert back.device.type == 'cpu'
    np.testing.assert_allclose(acts(back, obs, seed=7), a, rtol=1e-5, atol=1e-5)


@CUDA
def test_evaluate_checkpoint_runs_on_the_gpu(tmp_path):
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', image_size=(32, 32))
    for direct in (False, True):
        res = evaluate_checkpoint(ckpt, 'lift', episodes=2, max_steps=10, progress=False,
                                  device='cuda', direct=direct)
        assert res['device'].startswith('cuda') and res['episodes'] == 2
        assert sum(res['failures'].values()) + res['successes'] == 2
        assert all(1 <= e['steps'] <= 10 for e in res['per_episode'])


@CUDA
def test_the_slot_loads_a_checkpoint_onto_the_gpu_and_plans(tmp_path):
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', image_size=(32, 32))
    slot = _slot('cuda')
    assert slot.device.type == 'cuda'
    loaded = slot.load_now(ckpt)                        # warmed up on the GPU
    policy = loaded.policy
    assert policy.device.type == 'cuda'
    policy.reset(seed=0)
    policy.observe(_warm_obs(policy))
    chunk = policy.plan()
    assert chunk.shape == (policy.cfg.action_exec, 6) and np.isfinite(chunk).all()
    slot.request(ckpt, 'test')                          # the controller's background load
    deadline = time.monotonic() + 60
    pending, failed = slot.take()
    while pending is None and not failed and time.monotonic() < deadline:
        time.sleep(0.05)
        pending, failed = slot.take()
    assert not failed and pending is not None, failed
    assert pending.policy.device.type == 'cuda'
    with pytest.raises(ValueError, match=r'device cuda:\d+: this machine has \d+ CUDA GPU'):
        _slot(f'cuda:{torch.cuda.device_count()}')

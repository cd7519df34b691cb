"""Policy components (il_ros.models): the registry, every encoder, core and head.

Parametrized over the registry, so a newly registered component is tested without edits
(with its default options unless TINY names smaller ones).
"""
import pytest
import torch
import torch.nn.functional as F

from conftest import fit_head
from il_ros.models import registry
from il_ros.models.heads.ddim import NoiseSchedule
from il_ros.models.heads.gaussian import gaussian_log_prob
from il_ros.models.obs_encoder import ObsEncoder

torch.set_num_threads(1)          # tiny models: a 2nd thread only adds barriers

# Small options per registered name, to keep the tests fast.
TINY = {
    'resnet18': {'width': 0.125, 'num_kp': 4, 'feat_dim': 8},
    'conv4': {'channels': [8, 8], 'strides': [2, 1], 'num_kp': 4, 'feat_dim': 8},
    'mlp': {'hidden': 16, 'out_dim': 8},
    'none': {'hidden': [32]},
    'lstm': {'hidden_size': 16, 'num_layers': 2},
    'mse': {}, 'gaussian': {}, 'gmm': {'num_modes': 3},
    'diffusion': {'down_dims': [16, 32], 'step_embed_dim': 16, 'kernel_size': 3},
}
HEAD_HORIZON = 4                      # divisible by 2 ** (len(down_dims) - 1)


def tiny(kind: str, name: str, **extra) -> dict:
    """Return a component config dict with the tiny options."""
    return {'name': name, **TINY.get(name, {}), **extra}


def build_encoder(name: str):
    cls = registry.lookup('encoder', name)
    if cls.modality == 'image':
        return registry.build('encoder', tiny('encoder', name), in_channels=3)
    return registry.build('encoder', tiny('encoder', name), in_dim=5)


def build_head(name: str, in_dim: int = 8, action_dim: int = 3, horizon: int = HEAD_HORIZON,
               **extra):
    return registry.build('head', tiny('head', name, **extra), in_dim=in_dim,
                          action_dim=action_dim, horizon=horizon)


def test_registry_names_and_errors():
    assert {'resnet18', 'conv4', 'mlp'} <= set(registry.names('encoder'))
    assert {'none', 'lstm'} <= set(registry.names('core'))
    assert {'mse', 'gaussian', 'gmm', 'diffusion'} <= set(registry.names('head'))
    with pytest.raises(ValueError, match=r"'transformer' is not registered.*'diffusion'"):
        registry.build('head', {'name': 'transformer'}, in_dim=4, action_dim=2, horizon=1)
    with pytest.raises(ValueError, match=r"no option\(s\) \['modes'\].*num_modes"):
        registry.build('head', {'name': 'gmm', 'modes': 3}, in_dim=4, action_dim=2, horizon=1)
    with pytest.raises(ValueError, match='name'):
        registry.make_config('core', {'hidden_size': 3})
    with pytest.raises(ValueError, match='kind'):
        registry.register('optimizer', 'adam')
    with pytest.raises(ValueError, match='already registered'):
        @registry.register('head', 'mse')
        class Other(torch.nn.Module):
            config_class = registry.lookup('head', 'mse').config_class
    with pytest.raises(ValueError, match='sample_mode'):
        registry.make_config('head', {'name': 'gmm', 'sample_mode': 'mean'})
    full = registry.config_to_dict('head', {'name': 'gmm'})
    assert full['num_modes'] == 5 and full['min_std'] == 1e-4
    assert full['sample_mode'] == 'mode_mean'


@pytest.mark.parametrize('name', registry.names('encoder'))
def test_encoder_shapes_and_gradients(name):
    torch.manual_seed(0)
    enc = build_encoder(name)
    x = (torch.rand(3, 3, 32, 32) if enc.modality == 'image' else torch.randn(3, 5))
    y = enc(x)
    assert y.shape == (3, enc.out_dim) and torch.isfinite(y).all()
    y.square().sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


def test_obs_encoder_fuses_cameras_and_folds_time():
    torch.manual_seed(0)
    cams = {c: build_encoder('conv4') for c in ('front', 'wrist')}
    enc = ObsEncoder(cams, build_encoder('mlp'))
    assert enc.image_encoders['front'] is not enc.image_encoders['wrist']   # not shared
    imgs = {c: torch.rand(2, 3, 3, 24, 24) for c in cams}
    prop = torch.randn(2, 3, 5)
    out = enc(imgs, prop)
    assert out.shape == (2, 3, 8 + 8 + 8) and enc.out_dim == 24
    # Frame (b, t) of the fused output is the per-frame encoders applied to that frame.
    expect = torch.cat([cams['front'](imgs['front'][1, 2:3]), cams['wrist'](imgs['wrist'][1, 2:3]),
                        enc.proprio_encoder(prop[1, 2:3])], -1)
    assert torch.allclose(out[1, 2:3], expect, atol=1e-5)
    fast = ObsEncoder(cams, build_encoder('mlp'), bf16=True, channels_last=True)
    fast.load_state_dict(enc.state_dict())
    out_fast = fast(imgs, prop)
    assert out_fast.dtype == torch.float32
    assert torch.allclose(out_fast, out, atol=0.1, rtol=0.05)       # bf16 rounding only
    with pytest.raises(ValueError, match='at least one'):
        ObsEncoder({}, None)


@pytest.mark.parametrize('name', registry.names('core'))
def test_core_shapes_and_step_matches_forward(name):
    torch.manual_seed(0)
    core = registry.build('core', tiny('core', name), in_dim=6, obs_horizon=3, seq_len=5)
    core.eval()
    x = torch.randn(2, 5 if core.sequence else 3, 6)
    out = core(x)
    assert out.shape == ((2, 5, core.out_dim) if core.sequence else (2, 1, core.out_dim))
    core.reset()
    if core.sequence:            # stepping with carried state reproduces the window
        steps = torch.stack([core.step(x[:, :k + 1]) for k in range(5)], 1)
        assert torch.allclose(steps, out, atol=1e-5)
        again = core.step(x[:, :1])                      # step 6: state reset (seq_len 5)
        assert torch.allclose(again, out[:, 0], atol=1e-5)
        core.reset()
        assert torch.allclose(core.step(x[:, :1]), out[:, 0], atol=1e-5)
    else:
        assert torch.allclose(core.step(x), out[:, 0])


def test_lstm_state_carried_for_the_episode_with_reset_every_zero():
    torch.manual_seed(0)
    core = registry.build('core', tiny('core', 'lstm', reset_every=0), in_dim=4, seq_len=2)
    x = torch.randn(1, 4, 4)
    full = core(x)
    steps = torch.stack([core.step(x[:, k:k + 1]) for k in range(4)], 1)
    assert torch.allclose(steps, full, atol=1e-5)


@pytest.mark.parametrize('name', registry.names('head'))
def test_head_shapes_and_loss_falls_on_a_tiny_batch(name):
    torch.manual_seed(0)
    head = build_head(name)
    feats, target = torch.randn(8, 8), torch.rand(8, HEAD_HORIZON, 3) * 2 - 1
    mask, w = torch.ones(8, HEAD_HORIZON, dtype=torch.bool), torch.ones(8)
    out = head.sample(feats, generator=torch.Generator().manual_seed(0))
    assert out.shape == (8, HEAD_HORIZON, 3) and torch.isfinite(out).all()

    def loss_at_seed():
        torch.manual_seed(1)                           # the same diffusion noise and t
        with torch.no_grad():
            return head.loss(feats, target, mask, w).item()
    before = loss_at_seed()
    fit_head(head, feats, target, mask, 80)
    after = loss_at_seed()
    assert after < before - 0.3 * abs(before), (before, after)
    torch.manual_seed(2)
    assert head.loss(feats, target, mask, torch.zeros(8)).item() == 0.0
    with pytest.raises(ValueError, match='targets'):
        head.loss(feats, target[:, :1], mask[:, :1], w)


@pytest.mark.parametrize('name', registry.names('head'))
def test_head_loss_ignores_masked_targets_and_scales_with_weight(name):
    torch.manual_seed(0)
    head = build_head(name)
    feats, target = torch.randn(6, 8), torch.rand(6, HEAD_HORIZON, 3)
    mask = torch.ones(6, HEAD_HORIZON, dtype=torch.bool)
    mask[0, 2:] = False
    mask[3] = False

    def loss(t, w=torch.ones(6)):
        torch.manual_seed(1)
        return head.loss(feats, t, mask, w)
    changed = target.clone()
    changed[3] -= 5.0                                          # a fully padded sample
    if name != 'diffusion':      # the UNet sees the whole noisy chunk, padding included
        changed[0, 2:] += 5.0
    assert torch.allclose(loss(changed), loss(target), atol=1e-5)
    changed[1, 0] += 5.0                                       # a valid entry matters
    assert not torch.allclose(loss(changed), loss(target), atol=1e-3)
    assert torch.allclose(loss(target, torch.full((6,), 2.0)), 2 * loss(target), atol=1e-5)


def test_l1_regression_follows_the_median_where_mse_follows_the_outlier():
    """9 targets at 0 and one at 10 for one input: MSE predicts ~1, L1 stays at ~0."""
    torch.manual_seed(0)
    feats = torch.ones(10, 4)
    target = torch.zeros(10, 1, 1)
    target[0] = 10.0
    mask = torch.ones(10, 1, dtype=torch.bool)
    mse = fit_head(build_head('mse', in_dim=4, action_dim=1, horizon=1), feats, target, mask, 400)
    l1 = fit_head(build_head('mse', in_dim=4, action_dim=1, horizon=1, loss='l1'), feats,
                  target, mask, 400)
    with torch.no_grad():
        assert abs(mse.sample(feats[:1]).item() - 1.0) < 0.1
        assert abs(l1.sample(feats[:1]).item()) < 0.1
        feats2, mask2, w = torch.ones(1, 4), torch.ones(1, 2, dtype=torch.bool), torch.ones(1)
        for kind, want in (('l1', (0.5 + 2.0) / 2), ('mse', (0.25 + 4.0) / 2)):
            head = build_head('mse', in_dim=4, action_dim=1, horizon=2, loss=kind)
            target = head(feats2) + torch.tensor([[[0.5], [-2.0]]])
            assert torch.isclose(head.loss(feats2, target, mask2, w), torch.tensor(want))
    with pytest.raises(ValueError, match="loss must be one of"):
        build_head('mse', loss='huber')


def test_gmm_mode_mean_finds_both_modes_where_mse_averages():
    """Targets +1 and -1 for the same input: MSE predicts ~0, GMM's mode mean ~+-1."""
    torch.manual_seed(0)
    feats = torch.ones(64, 4)
    target = torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0).reshape(64, 1, 1)
    mask = torch.ones(64, 1, dtype=torch.bool)
    mse = fit_head(build_head('mse', in_dim=4, action_dim=1, horizon=1), feats, target, mask, 200)
    gmm = fit_head(build_head('gmm', in_dim=4, action_dim=1, horizon=1), feats, target, mask, 300)
    with torch.no_grad():
        assert abs(mse.sample(feats[:1]).item()) < 0.1
        mode = gmm.sample(feats[:1]).item()
        assert abs(abs(mode) - 1.0) < 0.05, mode
        logits, means, _ = gmm(feats[:1])
        top2 = means[0, logits[0].topk(2).indices, 0, 0]            # the two heaviest modes
        assert sorted(torch.sign(top2).tolist()) == [-1.0, 1.0], top2
        gmm.cfg.sample_mode = 'sample'
        draws = gmm.sample(feats, generator=torch.Generator().manual_seed(0))[:, 0, 0]
        assert (draws > 0.9).sum() > 10 and (draws < -0.9).sum() > 10
        assert ((draws.abs() - 1).abs() < 0.1).float().mean() > 0.9


def test_gmm_sticky_mode_keeps_the_plan_being_executed():
    """Two chunk modes (+1 and -1 throughout): the replan keeps the previous plan's mode.

    It does so even when the other mode's weight is now higher; without a prior (the first
    plan) the heavier mode wins.
    """
    torch.manual_seed(0)
    feats = torch.ones(64, 4)
    target = torch.where(torch.arange(64) % 3 == 0, 1.0, -1.0).reshape(64, 1, 1).expand(
        64, 4, 1).contiguous()                                       # -1 is twice as common
    mask = torch.ones(64, 4, dtype=torch.bool)
    gmm = fit_head(build_head('gmm', in_dim=4, action_dim=1, horizon=4), feats, target, mask, 300)
    with torch.no_grad():
        first = gmm.sample(feats[:1])
        assert torch.allclose(first, -torch.ones(1, 4, 1), atol=0.05), first
        up = torch.ones(1, 2, 1)                                     # the +1 plan's remainder
        kept = gmm.sample(feats[:1], prior=up)
        assert torch.allclose(kept, torch.ones(1, 4, 1), atol=0.05), kept
        gmm.cfg.sticky = False
        assert torch.allclose(gmm.sample(feats[:1], prior=up), first)


def test_gmm_on_a_unimodal_task_tracks_the_target():
    torch.manual_seed(0)
    feats = torch.randn(64, 4)
    target = (feats[:, :2] * 0.5).reshape(64, 1, 2)                 # a linear map
    mask = torch.ones(64, 1, dtype=torch.bool)
    gmm = fit_head(build_head('gmm', in_dim=4, action_dim=2, horizon=1), feats, target, mask, 300)
    with torch.no_grad():
        err = (gmm.sample(feats) - target).abs()
    assert err.mean() < 0.05 and err.max() < 0.2, err


def test_gmm_binary_dims_model_a_switch_beside_the_mixture():
    """A gripper-like last value beside a bimodal arm value.

    The gripper is closed where feature 0 > 0, per chunk step. The mixture keeps the arm's
    two modes, the switch comes out as exact +-1 from its own Bernoulli and follows the
    input, masked steps do not count, and bad indices are refused.
    """
    torch.manual_seed(0)
    feats = torch.randn(128, 4)
    arm = torch.where(torch.arange(128) % 2 == 0, 1.0, -1.0)[:, None].expand(128, 2)
    grip = torch.stack([feats[:, 0] > 0, feats[:, 0] > 0.5], 1).float() * 2 - 1
    target = torch.stack([arm, grip], -1)                            # (N, Tp=2, A=2)
    mask = torch.ones(128, 2, dtype=torch.bool)
    gmm = fit_head(build_head('gmm', in_dim=4, action_dim=2, horizon=2, binary_dims=[-1]),
                   feats, target, mask, 300)
    assert gmm.binary == [1] and gmm.continuous == [0]
    with torch.no_grad():
        out = gmm.sample(feats)
        assert out.shape == (128, 2, 2)
        assert set(out[..., 1].unique().tolist()) <= {-1.0, 1.0}
        assert (out[..., 1] == grip).float().mean() > 0.95
        assert ((out[..., 0].abs() - 1).abs() < 0.1).float().mean() > 0.9   # a mode, not 0
        w = torch.ones(128)
        moved = target.clone()
        moved[:, 1, 1] *= -1                                          # flip a masked step
        m2 = mask.clone()
        m2[:, 1] = False
        assert torch.allclose(gmm.loss(feats, moved, m2, w), gmm.loss(feats, target, m2, w))
        assert not torch.allclose(gmm.loss(feats, moved, mask, w),
                                  gmm.loss(feats, target, mask, w))
    with pytest.raises(ValueError, match='binary_dims'):
        build_head('gmm', action_dim=2, binary_dims=[2])
    with pytest.raises(ValueError, match='binary_dims'):
        build_head('gmm', action_dim=2, binary_dims=[0, 1])
    with pytest.raises(ValueError, match='binary_dims'):
        build_head('gmm', action_dim=2, binary_dims=[1, -1])


def test_gmm_nll_beta_changes_the_gradient_not_the_loss():
    """The beta-NLL against beta 0 (the exact mixture NLL, by autograd).

    The logged loss is the same for any beta, the logits' gradient is unchanged, and at
    beta 1 a mean's gradient is responsibility x residual (MSE-sized), not residual /
    sigma^2.
    """
    torch.manual_seed(0)
    feats = torch.randn(6, 3)
    target = torch.randn(6, 2, 2)
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[0, 1] = False
    w = torch.ones(6)
    heads = {b: build_head('gmm', in_dim=3, action_dim=2, horizon=2, num_modes=3, nll_beta=b)
             for b in (0.0, 0.5, 1.0)}
    for h in heads.values():
        h.load_state_dict(heads[0.0].state_dict())

    def grads(head):
        out = head.net(feats).detach().requires_grad_(True)     # the head's raw outputs
        hook = head.net.register_forward_hook(lambda _m, _i, _o: out)
        try:
            loss = head.loss(feats, target, mask, w)
            loss.backward()
        finally:
            hook.remove()
        return loss.detach(), out.grad
    res = {b: grads(h) for b, h in heads.items()}
    loss0, g0 = res[0.0]
    for b in (0.5, 1.0):
        lb, gb = res[b]
        assert torch.allclose(lb, loss0)
        assert torch.allclose(gb[:, :3], g0[:, :3], atol=1e-6)   # logits
        assert not torch.allclose(gb, g0)
    # beta 1: mean gradient = r_k * (mean - target) * mask / count(valid samples)
    g1 = res[1.0][1]
    with torch.no_grad():
        logits, means, stds, _ = heads[1.0].outputs(feats)
        m = mask[:, None, :, None].float()
        comp = (gaussian_log_prob(target[:, None], means, stds) * m).sum((-2, -1))
        r = F.softmax(F.log_softmax(logits, -1) + comp, -1)
        want = r[:, :, None, None] * (means - target[:, None]) * m / 6
    got = g1[:, 3:].reshape(6, 3, 2, 2, 2)[:, :, 0]              # (N, K, Tp, A): the means
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match='nll_beta'):
        build_head('gmm', nll_beta=1.5)


def test_diffusion_sampling_is_deterministic_per_generator():
    torch.manual_seed(0)
    head = build_head('diffusion')
    feats = torch.randn(2, 8)

    def draw(seed):
        return head.sample(feats, generator=torch.Generator().manual_seed(seed))
    a, b, c = draw(7), draw(7), draw(8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)
    assert a.abs().max() <= 1.0 + 1e-6                      # x0 clipped to the action range


def test_ddim_schedule_and_step_recover_x0_with_exact_noise():
    s = NoiseSchedule(100, 'squaredcos_cap_v2')
    ab = s.alphas_cumprod
    assert ab.shape == (100,) and (ab[1:] < ab[:-1]).all() and ab[-1] < 1e-3 < ab[0] < 1
    assert s.ddim_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert s.ddim_timesteps(1) == [0]
    with pytest.raises(ValueError):
        s.ddim_timesteps(101)
    torch.manual_seed(0)
    x0, eps = torch.rand(3, 4, 2) * 2 - 1, torch.randn(3, 4, 2)
    x_t = s.add_noise(x0, eps, torch.full((3,), 60))
    assert torch.allclose(s.ddim_step(eps, 60, x_t, -1), x0, atol=1e-4)
    x_prev = s.ddim_step(eps, 60, x_t, 30)                  # lands on q(x_30 | x0) with eps
    assert torch.allclose(x_prev, s.add_noise(x0, eps, torch.full((3,), 30)), atol=1e-4)


@pytest.mark.parametrize('kind', ['epsilon', 'sample'])
def test_diffusion_head_learns_a_bimodal_chunk(kind):
    """Two target chunks (+ramp, -ramp) for one input: samples land near one of the two.

    Also with ``sample`` (x0) prediction, whose regression target at high noise is the mean
    chunk: sampling must still draw the modes, not their average.
    """
    torch.manual_seed(0)
    head = build_head('diffusion', in_dim=4, action_dim=1, down_dims=[32, 64],
                      prediction_type=kind)
    ramp = torch.linspace(-0.8, 0.8, HEAD_HORIZON).reshape(1, HEAD_HORIZON, 1)
    target = torch.cat([ramp, -ramp]).repeat(8, 1, 1)               # (16, Tp, 1)
    fit_head(head, torch.ones(16, 4), target, torch.ones(16, HEAD_HORIZON, dtype=torch.bool),
             200, lr=3e-3)
    with torch.no_grad():
        out = head.sample(torch.ones(64, 4), generator=torch.Generator().manual_seed(0))
    err = torch.minimum((out - ramp).abs().amax((1, 2)), (out + ramp).abs().amax((1, 2)))
    assert err.median() < 0.2 and (err < 0.25).float().mean() > 0.6, err   # mean chunk: 0.8
    up = (out[:, -1, 0] > out[:, 0, 0]).float().mean().item()
    assert 0.1 < up < 0.9, up                                       # both modes drawn


def test_diffusion_default_size_and_horizon_check():
    head = registry.build('head', {'name': 'diffusion'}, in_dim=256, action_dim=6, horizon=16)
    n = sum(p.numel() for p in head.parameters())
    assert 2e6 < n < 8e6, n
    with pytest.raises(ValueError, match='divisible by 4'):
        registry.build('head', {'name': 'diffusion'}, in_dim=8, action_dim=2, horizon=6)
    with pytest.raises(ValueError, match='n_groups'):
        registry.make_config('head', {'name': 'diffusion', 'down_dims': [12, 24]})


@pytest.mark.parametrize('k, stride, pad, bias', [(5, 1, 2, True), (1, 1, 0, True),
                                                  (3, 2, 1, True), (3, 1, 1, False)])
def test_unet_conv1d_batch1_fast_path_equals_conv1d(k, stride, pad, bias):
    from il_ros.models.heads.unet1d import Conv1d
    torch.manual_seed(0)
    conv = Conv1d(12, 20, k, stride, pad, bias=bias)
    for n, length in ((1, 16), (1, 5), (3, 16)):      # batch 1: im2col path; 3: PyTorch's
        x = torch.randn(n, 12, length)
        ref = torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride, pad)
        assert torch.allclose(conv(x), ref, atol=1e-5), (n, length)


@pytest.mark.parametrize('kind', ['epsilon', 'sample', 'v_prediction'])
def test_diffusion_prediction_types_convert_back_to_the_noise(kind):
    """A perfect prediction of each target turns back into the exact noise at every step."""
    sched = NoiseSchedule(100)
    torch.manual_seed(0)
    x0, noise = torch.rand(3, 16, 2) * 2 - 1, torch.randn(3, 16, 2)
    for step in (0, 37, 99):
        t = torch.full((3,), step)
        x_t = sched.add_noise(x0, noise, t)
        pred = sched.target(kind, x0, noise, t)
        assert torch.allclose(sched.to_epsilon(kind, pred, step, x_t), noise, atol=1e-4)
    with pytest.raises(ValueError, match='prediction_type'):
        registry.make_config('head', {'name': 'diffusion', 'prediction_type': 'x0'})


@pytest.mark.parametrize('native', [True, False])
def test_bf16_takes_effect_only_where_the_device_has_it(native, monkeypatch):
    """``bf16`` autocasts the encoders where bfloat16 is native; emulated, it stays fp32."""
    from il_ros.models import obs_encoder
    monkeypatch.setattr(obs_encoder, 'bf16_is_native', lambda device_type: native)
    cam = build_encoder('conv4')
    enc = ObsEncoder({'front': cam}, None, bf16=True, channels_last=True)
    dtypes = []
    first_conv = next(m for m in cam.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    out = enc({'front': torch.rand(2, 1, 3, 24, 24)})
    assert out.dtype == torch.float32
    assert dtypes == [torch.bfloat16 if native else torch.float32]


def test_bf16_is_native_asks_the_hardware():
    from il_ros.models.obs_encoder import bf16_is_native
    cpu = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert bf16_is_native('cpu') == cpu
    assert bf16_is_native('meta') is False

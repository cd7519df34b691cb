"""Batch image augmentation (il_ros.data.augment)."""
import pytest
import torch

from il_ros.data.augment import (center_crop, color_jitter, ImageAugment, random_crop,
                                 to_float_chw)

B, T, H, W = 16, 2, 12, 10


def coord_images() -> torch.Tensor:
    """(B, T, 3, H, W) uint8: channel 0 = row, 1 = column, 2 = 10 * frame + sample % 10."""
    rows = torch.arange(H).view(1, 1, H, 1).expand(B, T, H, W)
    cols = torch.arange(W).view(1, 1, 1, W).expand(B, T, H, W)
    tag = (10 * torch.arange(T).view(1, T, 1, 1) + torch.arange(B).view(B, 1, 1, 1) % 10
           ).expand(B, T, H, W)
    return torch.stack([rows, cols, tag], 2).to(torch.uint8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_crop_same_offset_for_all_frames_and_in_range():
    x = coord_images()
    out = random_crop(x, 7, gen())
    assert out.shape == (B, T, 3, 7, 7) and out.dtype == torch.uint8
    tops, lefts = out[:, :, 0, 0, 0], out[:, :, 1, 0, 0]                  # (B, T)
    assert torch.equal(tops[:, 0], tops[:, 1]) and torch.equal(lefts[:, 0], lefts[:, 1])
    for b in range(B):
        top, left = int(tops[b, 0]), int(lefts[b, 0])
        assert 0 <= top <= H - 7 and 0 <= left <= W - 7
        assert torch.equal(out[b], x[b, :, :, top:top + 7, left:left + 7])
    many = random_crop(coord_images().repeat(8, 1, 1, 1, 1), 7, gen(1))
    assert set(many[:, 0, 0, 0, 0].tolist()) == set(range(H - 7 + 1))    # every offset used
    assert set(many[:, 0, 1, 0, 0].tolist()) == set(range(W - 7 + 1))


def test_crop_layouts_and_backends_agree():
    x = coord_images()
    cf = random_crop(x, 6, gen(3))
    cl = random_crop(x.permute(0, 1, 3, 4, 2).contiguous(), 6, gen(3), channels_last=True)
    assert cl.shape == (B, T, 6, 6, 3)
    assert torch.equal(cf, cl.permute(0, 1, 4, 2, 3))
    # bfloat16 takes the torch (unfold) path, uint8 the numpy one: same crops.
    assert torch.equal(random_crop(x.to(torch.bfloat16), 6, gen(3)), cf.to(torch.bfloat16))
    assert torch.equal(random_crop(x.permute(0, 1, 3, 4, 2).to(torch.bfloat16), 6, gen(3),
                                   channels_last=True), cl.to(torch.bfloat16))
    with pytest.raises(ValueError, match='larger'):
        random_crop(x, 11, gen())


def test_crop_deterministic_under_generator():
    x = torch.randint(0, 256, (B, T, 3, H, W), dtype=torch.uint8)
    assert torch.equal(random_crop(x, 6, gen(5)), random_crop(x, 6, gen(5)))
    assert not torch.equal(random_crop(x, 6, gen(5)), random_crop(x, 6, gen(6)))


def test_center_crop_exact():
    x = coord_images()
    out = center_crop(x, 6)
    assert out[:, :, 0, 0, 0].unique().tolist() == [(H - 6) // 2]
    assert out[:, :, 1, 0, 0].unique().tolist() == [(W - 6) // 2]
    cl = center_crop(x.permute(0, 1, 3, 4, 2), 6, channels_last=True)
    assert torch.equal(cl.permute(0, 1, 4, 2, 3), out)


def test_color_jitter_range_determinism_and_frames_share_factors():
    x = torch.randint(0, 256, (B, 1, 3, H, W), dtype=torch.uint8).repeat(1, T, 1, 1, 1)
    y = color_jitter(x, 0.4, 0.4, 0.4, generator=gen(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(y[:, 0], y[:, 1])                     # same factors for all frames
    assert torch.equal(y, color_jitter(x, 0.4, 0.4, 0.4, generator=gen(0)))
    assert not torch.allclose(y, color_jitter(x, 0.4, 0.4, 0.4, generator=gen(1)))
    xf = x.float() / 255
    assert not torch.allclose(y, xf, atol=1e-3)
    assert torch.allclose(color_jitter(xf, 0.4, 0.4, 0.4, generator=gen(0)), y, atol=1e-6)
    assert torch.allclose(color_jitter(x, 0, 0, 0), xf, atol=1e-6)   # zero amounts: identity


def test_color_jitter_components():
    x = torch.full((B, T, 3, H, W), 0.5)
    x[..., 0, :, :] = 0.2                                    # a coloured, flat image
    bright = color_jitter(x, 0.3, 0.0, 0.0, generator=gen(2))
    ratio = bright / x                                        # one factor per sample
    assert torch.allclose(ratio, ratio[:, :1, :1, :1, :1].expand_as(ratio), atol=1e-6)
    assert ratio.min() >= 0.7 - 1e-6 and ratio.max() <= 1.3 + 1e-6
    gray = torch.rand(B, T, 1, H, W).expand(B, T, 3, H, W)
    sat = color_jitter(gray, 0.0, 0.0, 0.5, generator=gen(2))
    assert torch.allclose(sat, gray, atol=1e-6)              # saturation keeps gray pixels
    check = (torch.arange(H)[:, None] + torch.arange(W)) % 2              # (H, W) 0/1
    g = (0.4 + 0.2 * check).expand(B, T, 3, H, W)           # gray, mean 0.5, no clamp
    con = color_jitter(g, 0.0, 0.5, 0.0, generator=gen(2))
    m = g.mean(dim=(-2, -1), keepdim=True)
    fc = (con - m) / (g - m)                                 # deviations from the mean scale
    assert torch.allclose(fc, fc[:, :1, :1, :1, :1].expand_as(fc), atol=1e-3)
    assert fc.min() >= 0.5 - 1e-3 and fc.max() <= 1.5 + 1e-3 and fc.std() > 0.05
    assert torch.allclose(con.mean(dim=(-2, -1)), m[..., 0, 0], atol=1e-6)
    with pytest.raises(ValueError):
        color_jitter(torch.rand(B, T, 1, H, W))


def test_image_augment_pipeline():
    imgs = torch.randint(0, 256, (4, 2, 84, 84, 3), dtype=torch.uint8)   # (B, T, H, W, 3)
    aug = ImageAugment(crop=76)
    tr = aug(imgs, train=True, generator=gen(0))
    assert tr.shape == (4, 2, 3, 76, 76) and tr.dtype == torch.float32
    assert 0 <= tr.min() and tr.max() <= 1
    assert torch.equal(tr, aug(imgs, train=True, generator=gen(0)))
    ev = aug(imgs, train=False)
    assert torch.equal(ev, center_crop(to_float_chw(imgs), 76))
    assert ImageAugment(crop=None)(imgs, train=False).shape == (4, 2, 3, 84, 84)
    with pytest.raises(ValueError, match='uint8'):
        aug(imgs.float())

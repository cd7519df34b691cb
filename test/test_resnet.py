"""ResNet-18 (torchvision-compatible names, GroupNorm option) and spatial-softmax keypoints."""
import pickle

import pytest
from safetensors.torch import save_file
import torch

from il_ros.models.resnet import load_torchvision_weights, ResNet18
from il_ros.models.spatial_softmax import SpatialSoftmax


def torchvision_resnet18_keys() -> set[str]:
    """The state-dict keys of torchvision's resnet18, spelled out from the architecture."""
    bn = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    keys = {'conv1.weight', 'fc.weight', 'fc.bias'} | {f'bn1.{p}' for p in bn}
    for layer in range(1, 5):
        for block in range(2):
            pre = f'layer{layer}.{block}'
            keys |= {f'{pre}.conv1.weight', f'{pre}.conv2.weight'}
            keys |= {f'{pre}.bn{i}.{p}' for i in (1, 2) for p in bn}
        if layer > 1:
            keys.add(f'layer{layer}.0.downsample.0.weight')
            keys |= {f'layer{layer}.0.downsample.1.{p}' for p in bn}
    return keys


def test_state_dict_keys_and_shapes_match_torchvision():
    sd = ResNet18().state_dict()
    assert set(sd) == torchvision_resnet18_keys() and len(sd) == 122
    assert sd['conv1.weight'].shape == (64, 3, 7, 7)
    assert sd['layer2.0.downsample.0.weight'].shape == (128, 64, 1, 1)
    assert sd['layer4.1.conv2.weight'].shape == (512, 512, 3, 3)
    assert sd['fc.weight'].shape == (1000, 512)
    n_params = sum(p.numel() for p in ResNet18().parameters())
    assert n_params == 11_689_512                  # torchvision resnet18's parameter count


def test_output_shapes_and_options():
    x = torch.rand(2, 3, 84, 84)
    m = ResNet18(norm='group').eval()
    assert m(x).shape == (2, 1000)
    assert m.forward_features(x).shape == (2, 512, 3, 3)
    assert ResNet18(num_classes=None)(x).shape == (2, 512)
    half = ResNet18(norm='group', width=0.5, num_classes=None)
    assert half.out_channels == 256 and half.forward_features(x).shape == (2, 256, 3, 3)
    assert ResNet18(num_classes=None, in_channels=1)(torch.rand(1, 1, 64, 64)).shape == (1, 512)
    gn_keys = set(ResNet18(norm='group').state_dict())
    assert not any('running' in k or 'num_batches' in k for k in gn_keys)
    assert {'bn1.weight', 'layer3.0.downsample.1.bias', 'layer1.1.bn2.weight'} <= gn_keys
    with pytest.raises(ValueError, match='norm'):
        ResNet18(norm='layer')


def test_group_norm_output_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 64, 64)
    gn, bn = ResNet18(norm='group').train(), ResNet18(norm='batch').train()
    assert torch.allclose(gn(x)[:1], gn(x[:1]), atol=1e-5)
    assert not torch.allclose(bn(x)[:1], bn(x[:1]), atol=1e-3)


@pytest.mark.parametrize('fmt', ['pth', 'safetensors'])
def test_group_norm_model_loads_batch_norm_weights(tmp_path, fmt):
    torch.manual_seed(1)
    src = ResNet18(norm='batch')
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / f'resnet18.{fmt}'
    if fmt == 'pth':
        torch.save(src.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    gn = ResNet18(norm='group')
    report = load_torchvision_weights(gn, path)
    assert len(report['skipped']) == 20 * 3 and all('running' in k or 'num_batches' in k
                                                    for k in report['skipped'])
    for k, v in gn.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k
    bn = ResNet18(norm='batch')
    assert load_torchvision_weights(bn, path)['skipped'] == []
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(bn.eval()(x), src.eval()(x))
    headless = ResNet18(num_classes=10)
    assert load_torchvision_weights(headless, path)['skipped'] == ['fc.bias', 'fc.weight']


def test_mismatched_or_unsafe_weights_raise_naming_the_file(tmp_path, capsys):
    path = tmp_path / 'r18.pth'
    torch.save(ResNet18().state_dict(), path)
    with pytest.raises(ValueError, match=f'{path}.*shape mismatch'):
        load_torchvision_weights(ResNet18(width=0.5), path)
    sd = ResNet18().state_dict()
    del sd['layer3.1.conv1.weight']
    sd['extra.weight'] = torch.zeros(1)
    torch.save(sd, tmp_path / 'partial.pth')
    with pytest.raises(ValueError, match=r'missing.*layer3\.1\.conv1.*unexpected.*extra'):
        load_torchvision_weights(ResNet18(), tmp_path / 'partial.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_torchvision_weights(ResNet18(), tmp_path / 'nope.pth')

    class Payload:                                   # unpickling this would run code
        def __reduce__(self):
            return (print, ('pickle code ran',))
    (tmp_path / 'evil.pth').write_bytes(pickle.dumps({'conv1.weight': Payload()}, protocol=2))
    with pytest.raises(ValueError, match='evil.pth'):
        load_torchvision_weights(ResNet18(), tmp_path / 'evil.pth')
    assert 'pickle code ran' not in capsys.readouterr().out


def test_spatial_softmax_finds_bright_spots():
    h, w = 9, 13
    feat = torch.zeros(2, 3, h, w)
    spots = [(0, 0), (4, 6), (8, 12)]                # (row, col) per channel
    for c, (r, col) in enumerate(spots):
        feat[:, c, r, col] = 60.0
    kp = SpatialSoftmax(3, num_kp=None)(feat)
    assert kp.shape == (2, 3, 2)
    for c, (r, col) in enumerate(spots):
        expect = torch.tensor([-1 + 2 * col / (w - 1), -1 + 2 * r / (h - 1)])
        assert torch.allclose(kp[0, c], expect, atol=1e-4), (c, kp[0, c])
    flat = SpatialSoftmax(3, num_kp=None)(torch.zeros(1, 3, h, w))
    assert torch.allclose(flat, torch.zeros(1, 3, 2), atol=1e-6)  # uniform: the centre


def test_spatial_softmax_on_resnet_features_trains():
    enc = ResNet18(norm='group', num_classes=None)
    head = SpatialSoftmax(enc.out_channels, num_kp=16, learnable_temperature=True)
    kp = head(enc.forward_features(torch.rand(2, 3, 84, 84)))
    assert kp.shape == (2, 16, 2) and head.output_dim() == 32
    assert kp.abs().max() <= 1
    kp.sum().backward()
    assert head.temperature.grad is not None and enc.conv1.weight.grad is not None

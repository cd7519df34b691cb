"""Small building blocks shared by the components."""
from __future__ import annotations

from torch import nn


def make_mlp(in_dim: int, hidden, out_dim: int | None,
             activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``in_dim -> hidden... -> out_dim`` with ``activation`` between them.

    ``out_dim=None``: the last hidden layer is the output and keeps its activation (a
    feature extractor); otherwise the output layer is linear. ``hidden=()`` and
    ``out_dim=None`` gives the identity.
    """
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, int(h)), activation()]
        d = int(h)
    if out_dim is not None:
        layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def mlp_out_dim(in_dim: int, hidden, out_dim: int | None) -> int:
    """Return the output size of :func:`make_mlp` with the same arguments."""
    if out_dim is not None:
        return out_dim
    return int(hidden[-1]) if len(hidden) else in_dim


def check_positive(owner: str, **values) -> None:
    """Raise ValueError naming ``owner`` and the option when a value is not > 0."""
    for name, v in values.items():
        items = v if isinstance(v, (list, tuple)) else [v]
        if not items and isinstance(v, (list, tuple)):
            continue
        if any((not isinstance(x, (int, float))) or x <= 0 for x in items):
            raise ValueError(f'{owner}: {name} must be > 0, got {v!r}')

"""``lstm``: robomimic's BC-RNN history core (2 layers x 400, trained on 10-step windows)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from il_ros.models.layers import check_positive
from il_ros.models.registry import register


@dataclass
class LstmConfig:
    """Options of the ``lstm`` core."""

    hidden_size: int = 400
    """LSTM units per layer (robomimic: 400)."""
    num_layers: int = 2
    """Stacked LSTM layers."""
    dropout: float = 0.0
    """Dropout between layers (training only)."""
    reset_every: int | None = None
    """At act time the hidden state restarts from zero every this many steps; None uses
    ``seq_len``, so rollout sees states like the training windows (robomimic's
    ``rnn_horizon`` behaviour). 0 carries the state for the whole episode."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('lstm', hidden_size=self.hidden_size, num_layers=self.num_layers)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'lstm: dropout must be in [0, 1), got {self.dropout}')
        if self.reset_every is not None and self.reset_every < 0:
            raise ValueError(f'lstm: reset_every must be >= 0 or None, got {self.reset_every}')


@register('core', 'lstm')
class LstmCore(nn.Module):
    """(B, T, D) -> LSTM -> (B, T, H); one step at a time with carried state at act time."""

    config_class = LstmConfig
    sequence = True

    def __init__(self, cfg: LstmConfig, in_dim: int, obs_horizon: int = 1, seq_len: int = 10):
        """``in_dim`` features per frame; ``seq_len`` is the training window length."""
        super().__init__()
        self.lstm = nn.LSTM(in_dim, cfg.hidden_size, cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.out_dim = cfg.hidden_size
        self.reset_every = seq_len if cfg.reset_every is None else cfg.reset_every
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None
        self._count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) from a zero state -> (B, T, H)."""
        return self.lstm(x)[0]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Feed the newest frame of (B, T, D) with the carried state -> (B, H).

        The cell is written out (two matmuls per layer): ``nn.LSTM`` on one step at batch 1
        went through oneDNN's RNN primitive at ~2 ms per layer on this CPU, the written-out
        cell takes ~0.1 ms (docs/models.md). Dropout is not applied (act time).
        """
        if self.reset_every and self._count % self.reset_every == 0:
            self._state = None
        inp = x[:, -1]                                                  # (B, D)
        if self._state is None:
            zeros = inp.new_zeros(self.lstm.num_layers, inp.shape[0], self.out_dim)
            self._state = (zeros, zeros)
        h_all, c_all = self._state                                      # (L, B, H) each
        hs, cs = [], []
        for layer in range(self.lstm.num_layers):
            gates = F.linear(inp, getattr(self.lstm, f'weight_ih_l{layer}'),
                             getattr(self.lstm, f'bias_ih_l{layer}', None))
            gates = gates + F.linear(h_all[layer], getattr(self.lstm, f'weight_hh_l{layer}'),
                                     getattr(self.lstm, f'bias_hh_l{layer}', None))  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)                          # PyTorch's gate order
            c = torch.sigmoid(f) * c_all[layer] + torch.sigmoid(i) * torch.tanh(g)
            inp = torch.sigmoid(o) * torch.tanh(c)                      # (B, H)
            hs.append(inp)
            cs.append(c)
        self._state = (torch.stack(hs), torch.stack(cs))
        self._count += 1
        return inp

    def reset(self) -> None:
        """Clear the carried hidden state (episode start, handover)."""
        self._state, self._count = None, 0

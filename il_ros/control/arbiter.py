"""Who drives the robot this tick: the policy, the human, or nobody (ROS-free).

The human holds control while deadman heartbeats keep arriving on the intervention channel
(and a human command has arrived); control lapses ``timeout_s`` after the last heartbeat.
Otherwise the policy drives when it is ready; else HOLD. Every change into POLICY asks the
caller to reset the policy, so its history is re-primed from the current observations
instead of the ones from before the human took over.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from il_ros import keys


class Source(str, Enum):
    """The control source, as published on /il/control_source and stored per frame."""

    POLICY = keys.SOURCE_POLICY
    HUMAN = keys.SOURCE_INTERVENTION
    HOLD = keys.SOURCE_HOLD


@dataclass
class Decision:
    """What the arbiter decided for one tick."""

    source: Source
    command: np.ndarray | None      # the human's command when source is HUMAN
    reset_policy: bool              # True on every entry into POLICY


@dataclass
class TakeoverArbiter:
    """Deadman-gated handover between policy and human."""

    timeout_s: float = 0.5
    """Human control ends this long after the last heartbeat."""
    source: Source = Source.HOLD
    last_beat: float | None = None
    human_cmd: np.ndarray | None = field(default=None, repr=False)
    handovers: int = 0

    def __post_init__(self):
        if not self.timeout_s > 0:
            raise ValueError(f'timeout_s must be > 0, got {self.timeout_s}')

    def heartbeat(self, t: float, held: bool = True) -> None:
        """A deadman message: True keeps (or takes) control, False releases it at once."""
        self.last_beat = t if held else None

    def human_command(self, command: np.ndarray) -> None:
        """Store the human's newest command."""
        self.human_cmd = np.asarray(command, float)

    def human_active(self, t: float) -> bool:
        """Tell whether the human holds control at ``t`` (fresh heartbeat and a command)."""
        return (self.last_beat is not None and t - self.last_beat <= self.timeout_s
                and self.human_cmd is not None)

    def decide(self, t: float, policy_ready: bool) -> Decision:
        """The source for the tick at time ``t``."""
        if self.human_active(t):
            new = Source.HUMAN
        elif policy_ready:
            new = Source.POLICY
        else:
            new = Source.HOLD
        if new is not Source.HUMAN and self.source is Source.HUMAN:
            self.human_cmd = None  # a later takeover starts from its own first command
        reset = new is Source.POLICY and self.source is not Source.POLICY
        if new is not self.source:
            self.handovers += 1
        self.source = new
        return Decision(new, self.human_cmd if new is Source.HUMAN else None, reset)

"""Who drives the robot this tick: the policy, the human, or nobody (ROS-free).

The deadman protocol on the intervention channel (docs/controller.md, "Takeover"):

- ``heartbeat(t, True)``, repeated while the human holds the deadman: the human claims
  control. The human's command drives while it is fresh (received within
  ``command_timeout_s``); a claim without a fresh command HOLDs. Neither the policy nor an
  old human command ever drives during a claim.
- ``heartbeat(t, False)``: the explicit hand-back (the teleop's deadman released, the
  supervisor recovered). The policy drives again at the next tick when it is ready.
- Heartbeats that stop without a hand-back (a crashed or hung teleop, a lost link) cannot be
  told from a person who is still holding on; ``timeout_s`` after the last one the claim
  lapses into a latched HOLD, and the policy drives again only after :meth:`rearm` (the
  controller's ``~/enable`` or ``~/reset``). A new takeover still works while latched: the
  human can always take control, and that takeover's explicit hand-back clears the latch.

Every change into POLICY asks the caller to reset the policy, so its history is re-primed
from the current observations instead of the ones from before the human took over.
All times are seconds of one clock, passed in (the controller's node clock; tests inject
their own).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from il_ros import keys

NO_HUMAN_COMMAND = 'no_human_command'
"""HOLD: the human claims control but no command has arrived in this claim."""
HUMAN_COMMAND_STALE = 'human_command_stale'
"""HOLD: the human claims control but the newest command is older than command_timeout_s."""
TAKEOVER_LAPSED = 'takeover_lapsed'
"""HOLD (latched): heartbeats stopped without a hand-back; needs ``rearm``."""


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
    reason: str | None = None       # why the arbiter chose HOLD; None: policy not ready


@dataclass
class TakeoverArbiter:
    """Deadman-gated handover between policy and human (see the module doc)."""

    timeout_s: float = 0.5
    """A claim lapses (latched HOLD) this long after its last heartbeat."""
    command_timeout_s: float = 0.25
    """A human command older than this is never executed (HOLD)."""
    source: Source = Source.HOLD
    last_beat: float | None = None
    """Time of the newest heartbeat of the current claim; None: no claim."""
    human_cmd: np.ndarray | None = field(default=None, repr=False)
    human_cmd_t: float | None = None
    latched: bool = False
    """Heartbeats stopped without a hand-back: HOLD until :meth:`rearm`."""
    lapses: int = 0
    handovers: int = 0

    def __post_init__(self):
        for name in ('timeout_s', 'command_timeout_s'):
            v = getattr(self, name)
            if not (v > 0 and np.isfinite(v)):
                raise ValueError(f'{name} must be a finite number > 0, got {v}')

    def heartbeat(self, t: float, held: bool = True) -> None:
        """A deadman message at ``t``: True keeps (or takes) control, False hands it back."""
        if held:
            self.last_beat = t
        else:
            self._end_claim()

    def human_command(self, command: np.ndarray, t: float) -> None:
        """Store the human's newest command, received at ``t``."""
        self.human_cmd = np.asarray(command, float)
        self.human_cmd_t = t

    def rearm(self) -> None:
        """Clear a latched HOLD: the policy may drive again (``~/enable``, ``~/reset``)."""
        self.latched = False

    def claimed(self, t: float) -> bool:
        """Tell whether the human claims control at ``t`` (a heartbeat within timeout_s)."""
        return self.last_beat is not None and t - self.last_beat <= self.timeout_s

    def command_fresh(self, t: float) -> bool:
        """Tell whether the newest human command is at most ``command_timeout_s`` old."""
        return (self.human_cmd is not None and self.human_cmd_t is not None
                and t - self.human_cmd_t <= self.command_timeout_s)

    def human_active(self, t: float) -> bool:
        """Tell whether the human's command drives at ``t`` (a claim and a fresh command)."""
        return self.claimed(t) and self.command_fresh(t)

    def decide(self, t: float, policy_ready: bool) -> Decision:
        """The source for the tick at time ``t``."""
        if self.last_beat is not None and not self.claimed(t):
            self._end_claim()            # silent: no hand-back came
            self.latched = True
            self.lapses += 1
        reason = None
        if self.claimed(t):
            if self.command_fresh(t):
                new = Source.HUMAN
                self.latched = False     # this takeover's own hand-back decides what follows
            else:
                new = Source.HOLD
                reason = NO_HUMAN_COMMAND if self.human_cmd is None else HUMAN_COMMAND_STALE
        elif self.latched:
            new, reason = Source.HOLD, TAKEOVER_LAPSED
        elif policy_ready:
            new = Source.POLICY
        else:
            new = Source.HOLD
        reset = new is Source.POLICY and self.source is not Source.POLICY
        if new is not self.source:
            self.handovers += 1
        self.source = new
        return Decision(new, self.human_cmd if new is Source.HUMAN else None, reset, reason)

    def _end_claim(self) -> None:
        self.last_beat = None
        self.human_cmd = None           # a later takeover starts from its own first command
        self.human_cmd_t = None

"""Job states: the `JobState` enum, its constants and how they are drawn.

A module of its own so that `tracker` (the API every job record carries)
and `job` (the record) can both use the states without importing each
other.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["JobState", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TERMINAL",
           "STATE_COLOURS", "state_badge_html", "StateFilter"]


class JobState(str, enum.Enum):
    """Where a job is in its life.  ``queued → running → one terminal state``.

    A queued job may also go straight to ``cancelled``.  The terminal states
    are in `TERMINAL`.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    # Enum's own __hash__ is Python code hashing the member *name*, which is
    # slow on the hot path and disagrees with str equality ("queued" ==
    # JobState.QUEUED).  Hash like the string value instead.
    __hash__ = str.__hash__

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED,
    JobState.CANCELLED,
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

#: What a query's ``state=`` takes: a state (or its name), several, or None for all.
StateFilter = JobState | str | Iterable[JobState | str] | None

#: Legal transitions.  Anything else is a bug in nbfrost and raises.
_ALLOWED = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
}


STATE_COLOURS = {
    QUEUED: "#6b7280",
    RUNNING: "#2563eb",
    SUCCEEDED: "#16a34a",
    FAILED: "#dc2626",
    CANCELLED: "#d97706",
}


def state_badge_html(state: JobState) -> str:
    colour = STATE_COLOURS[state]
    return (f'<span style="background:{colour};color:white;border-radius:3px;'
            f'padding:0 5px;font-size:90%">{state.value}</span>')

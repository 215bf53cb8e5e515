"""The output budget: how much output all *finished* jobs keep together.

`output_cap` bounds one job; this bounds the sum.  Each finished job's
output is counted once, when it finishes, so the cost per finish does not
grow with the number of jobs held.  Past the budget the oldest finished
jobs' output is replaced by a short note (which is counted in its place).
Running jobs are never counted, so the budget never cuts a job below its
own cap.

`OutputBudget` keeps only the accounting; the registry owns it and calls it
with its lock held, passing its id → job map so that jobs that expired or
were cleared give their share back.  The output itself is replaced after the
lock is released (`drop`): freeing a large string is not free.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

__all__ = ["OutputBudget", "fmt_chars"]

#: Jobs whose output is to be replaced, with the note to put in its place.
Victims = list[tuple["Job", str]]


def fmt_chars(n: int) -> str:
    """*n* characters, the way limits are written in nbfrost's docs (64 MiB)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,}"


def _note(limit: int) -> str:
    return (f"[nbfrost: output dropped to stay within output_budget={fmt_chars(limit)}, "
            "oldest finished jobs first; raise Dispatcher(output_budget=...)]\n")


class OutputBudget:
    """The characters of output finished jobs keep, oldest first.

    Not thread-safe on its own: every method but `drop` is called with the
    owning registry's lock held.
    """

    __slots__ = ("limit", "chars", "_note", "_kept", "_notes")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.chars = 0  # counted now, notes included
        self._note = "" if limit is None else _note(limit)
        # Finished jobs that kept output, oldest first, with what each was
        # counted for; jobs whose output was replaced move to _notes.
        self._kept: deque[tuple[Job, int]] = deque()
        self._notes: deque[tuple[Job, int]] = deque()

    def set_limit(self, limit: int | None, jobs: dict[int, Job]) -> Victims:
        """A new limit (None: stop counting); returns the output to drop now."""
        self.limit = limit
        self._note = "" if limit is None else _note(limit)
        if limit is None:
            self._kept.clear()
            self._notes.clear()
            self.chars = 0
            return []
        return self._over(jobs)

    def count(self, job: Job, chars: int, jobs: dict[int, Job]) -> Victims:
        """Count a finished job's *chars*; returns the output to drop now."""
        if not chars or self.limit is None or jobs.get(job._id) is not job:
            return []  # nothing to count, no budget, or cleared before it was counted
        self._kept.append((job, chars))
        self.chars += chars
        return self._over(jobs)

    def _over(self, jobs: dict[int, Job]) -> Victims:
        """Uncount the oldest output until the rest fits."""
        limit = self.limit
        if limit is None or self.chars <= limit:
            return []
        note = self._note
        victims = []
        kept = self._kept
        while self.chars > limit and kept:
            job, chars = kept.popleft()
            self.chars -= chars
            if jobs.get(job._id) is job:
                victims.append((job, note))
                self._notes.append((job, len(note)))
                self.chars += len(note)
        return victims

    def forget_expired(self, jobs: dict[int, Job]) -> None:
        """Give back the share of jobs no longer held, from the front of both
        queues (they are in finish order, like expiry)."""
        for queue in (self._kept, self._notes):
            while queue and jobs.get(queue[0][0]._id) is not queue[0][0]:
                self.chars -= queue.popleft()[1]

    def forget_cleared(self, jobs: dict[int, Job]) -> None:
        """Give back the share of jobs no longer held, anywhere in the queues
        (`Registry.clear` removes jobs from the middle)."""
        for queue in (self._kept, self._notes):
            keep = [(j, n) for j, n in queue if jobs.get(j._id) is j]
            self.chars -= sum(n for _, n in queue) - sum(n for _, n in keep)
            queue.clear()
            queue.extend(keep)

    @staticmethod
    def drop(victims: Victims) -> None:
        """Replace each victim's kept output by its note (no lock needed)."""
        for job, note in victims:
            details = job._details
            if details is not None and details.out is not None:
                details.out.drop(note)

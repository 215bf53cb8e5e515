"""Filters of job listings: states, a name or glob, a tag; the newest n.

Pure functions of job records, used by the registry's queries (and so by
`Dispatcher.jobs`, `to_frame` and the dashboard's text filter).  They run
outside the registry's lock, on a copied list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .states import JobState, StateFilter

if TYPE_CHECKING:
    from .job import Job

__all__ = ["matcher", "normalize_states", "take"]


def normalize_states(state: StateFilter) -> frozenset[JobState] | None:
    if state is None:
        return None
    if isinstance(state, (str, JobState)):
        state = (state,)
    try:
        return frozenset(JobState(s) for s in state)
    except ValueError:
        valid = ", ".join(s.value for s in JobState)
        raise ValueError(f"unknown state in {state!r}; valid states are {valid}") from None


def matcher(states: frozenset[JobState] | None, name: str | None,
             tag: str | None) -> Callable[[Job], bool] | None:
    if states is None and name is None and tag is None:
        return None
    name_match: Callable[[str], bool] | None = None
    if name is not None:
        inner = name[1:-1]
        if len(name) > 2 and name[0] == name[-1] == "*" and not any(c in inner for c in "*?["):
            # "*word*", the dashboard's text filter: a substring test is
            # several times faster than the glob (it runs once per job held).
            name_match = lambda n: inner in n  # noqa: E731
        elif any(c in name for c in "*?["):
            import fnmatch
            import re

            glob = re.compile(fnmatch.translate(name)).match
            name_match = lambda n: glob(n) is not None  # noqa: E731
        else:
            name_match = lambda n: n == name  # noqa: E731

    def match(job: Job) -> bool:
        if states is not None and job._state not in states:
            return False
        if name_match is not None and not name_match(job.display_name):
            return False
        return tag is None or tag in job._tags

    return match


def take(jobs: Iterator[Job], match: Callable[[Job], bool] | None, n: int) -> Iterator[Job]:
    if n <= 0:
        return
    for job in jobs:
        if match is None or match(job):
            yield job
            n -= 1
            if n == 0:
                return

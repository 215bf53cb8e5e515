"""Tab completion for ``%frost`` and ``%%frost`` (an IPython Matcher API v2 matcher).

What completes, everything derived from the magics' own argparse parsers
and from `JobState`, never from a hand-written list:

- ``%frost <TAB>``: the subcommands (``status``, ``jobs``, ``wait`` …).
- ``%frost status <TAB>`` (and ``output``, ``result``): every job id in the
  registry, newest first; ``cancel`` and ``wait`` offer the queued and
  running jobs, ``retry`` the finished ones.  Each completion's ``type`` is
  the job's state (``running``): ipykernel sends ``type`` to the front end
  in ``metadata._jupyter_types_experimental``, and JupyterLab shows it in a
  narrow column beside the completion, where a longer label wraps over the
  next row.  The job's name cannot travel with it: IPython turns a
  matcher's ``SimpleCompletion`` (text and type only) into a ``Completion``
  with an empty ``signature``, so ``%frost jobs`` is where names are read.
- ``%frost jobs --state <TAB>`` (or ``--state=<TAB>``): the states.
- ``%frost status -<TAB>``, ``%%frost -<TAB>``: the options of that parser
  (also after ``%frost status 3 <TAB>``, once every positional is given);
  ``%%frost --after <TAB>``: job ids.
- ``%frost pause <TAB>`` (``resume``, ``unschedule``): the ids of the
  schedules that command can act on (active, paused, not ended), with the
  schedule's state as the type.

Completion never creates a dispatcher: with none yet there are no ids to
offer.  When the line is a ``%frost`` line and there are matches, the other
matchers (``%store`` for ``%frost st``, file names, Jedi) are suppressed;
IPython suppresses only for a matcher that has matches, so where nbfrost
has nothing to offer, IPython's usual completions show.  A unique match
(``%frost st`` → ``status``) is then the kernel's only answer: terminal
IPython inserts it at once; JupyterLab 4 lists it alone and inserts it at
the next Tab (or Enter).

JupyterLab adds words of the cell itself (``%``, ``frost``, ``status`` after
``%frost status ``) from its own *context* provider, in the browser: no
kernel can suppress those.  Its setting *Code Completion → Completion
providers rank* with ``"CompletionProvider:context": -1`` turns them off.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..states import TERMINAL, JobState
from .shell import find_magics

__all__ = ["FrostMatcher", "install", "uninstall"]

log = logging.getLogger("nbfrost")

#: The matcher's identifier in IPython (``IPCompleter.disable_matchers`` takes it).
IDENTIFIER = "nbfrost.notebook.completion.FrostMatcher"
#: At most this many job ids are offered.
MAX_IDS = 100

# `%frost ...` alone, or as the right-hand side of an assignment (`x = %frost result 3`).
_LINE = re.compile(r"^\s*(?:[\w.\[\]'\"]+\s*=\s*)?%frost(?P<rest>(?:\s.*)?)$")
_CELL = re.compile(r"^\s*%%frost(?P<rest>(?:\s.*)?)$")
# Which subcommands offer which jobs: only the ones the command can act on.
_ACTIVE_ONLY = {"cancel", "wait"}
_FINISHED_ONLY = {"retry"}
# Options whose value is a job id.
_ID_DESTS = {"id", "ids", "after"}
# Arguments whose value is a schedule id, and the schedule states each command acts on.
_SCHEDULE_DEST = "schedule_id"
_SCHEDULE_STATES = {"pause": ("active",), "resume": ("paused",), "unschedule": ("active", "paused")}


def _result(texts: Iterable[tuple[str, str]], fragment: str, ordered: bool = False) -> dict:
    from IPython.core.completer import SimpleCompletion

    completions = [SimpleCompletion(text, type=kind) for text, kind in texts]
    return {"completions": completions, "matched_fragment": fragment,
            "suppress": bool(completions), "ordered": ordered}


def _options(parser: argparse.ArgumentParser, given: Iterable[str] = ()) -> list[str]:
    """The option strings of *parser*, without those of options already *given*
    (unless they may repeat, like ``--tag``)."""
    used = {word.partition("=")[0] for word in given if word.startswith("-")}
    return [opt for action in parser._actions
            if isinstance(action, argparse._AppendAction) or not used & set(action.option_strings)
            for opt in action.option_strings]


def _action_for(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    for action in parser._actions:
        if option in action.option_strings:
            return action
    return None


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


class FrostMatcher:
    """The completion matcher of one shell (IPython Matcher API v2)."""

    matcher_api_version = 2
    matcher_identifier = IDENTIFIER
    # Runs before the built-in matchers, so that its suppression applies.
    matcher_priority = 60.0

    def __init__(self, shell: Any, subcommands: Mapping[str, argparse.ArgumentParser],
                 cell_parser: argparse.ArgumentParser) -> None:
        self.shell = shell
        # The magics' own parsers, handed over by the magics (which import this
        # module, so it must not import them).
        self.subcommands = dict(subcommands)
        self.cell_parser = cell_parser
        # IPython reads it (as the default identifier) even when matcher_identifier is set.
        self.__qualname__ = IDENTIFIER

    # ------------------------------------------------------------ entry
    def __call__(self, context: Any) -> dict:
        try:
            return self._complete(context)
        except Exception:  # a completer must never print a traceback at every Tab
            log.debug("nbfrost completion failed", exc_info=True)
            return _result((), context.token)

    def _complete(self, context: Any) -> dict:
        line = context.line_with_cursor[:context.cursor_position]
        match = _LINE.match(line)
        if match is not None and not line.lstrip().startswith("%%"):
            return self._line(match.group("rest"))
        match = _CELL.match(line)
        if match is not None and context.cursor_line == 0:
            return self._cell(match.group("rest"))
        return _result((), context.token)

    # ------------------------------------------------------------ %frost
    def _line(self, rest: str) -> dict:
        if not rest:  # `%frost<TAB>`: the magic's own name, left to IPython
            return _result((), "")
        words, fragment = _split(rest)
        if not words:
            return _result(((sub, "subcommand") for sub in self.subcommands
                            if sub.startswith(fragment)), fragment)
        parser = self.subcommands.get(words[0])
        if parser is None:
            return _result((), fragment)
        return self._arguments(parser, words[0], words[1:], fragment)

    # ------------------------------------------------------------ %%frost
    def _cell(self, rest: str) -> dict:
        if not rest:
            return _result((), "")
        words, fragment = _split(rest)
        return self._arguments(self.cell_parser, "", words, fragment)

    # ------------------------------------------------------------ shared
    def _arguments(self, parser: argparse.ArgumentParser, sub: str, words: list[str],
                   fragment: str) -> dict:
        # `--state=ru`: complete the value after the '='.
        if fragment.startswith("-") and "=" in fragment:
            option, _, value = fragment.partition("=")
            action = _action_for(parser, option)
            return self._values(action, sub, value)
        if fragment.startswith("-"):
            return _result(((opt, "option") for opt in _options(parser, words)
                            if opt.startswith(fragment)), fragment)
        if words and words[-1].startswith("-"):
            action = _action_for(parser, words[-1])
            if action is not None and _takes_value(action):
                return self._values(action, sub, fragment)
        # A positional argument: which one is next?
        given = _count_positionals(parser, words)
        for action in _positionals(parser):
            many = action.nargs in ("*", "+")
            if many or given == 0:
                return self._values(action, sub, fragment, exclude=set(words))
            given -= 1
        # Every positional is given: the options are what may follow.
        return _result(((opt, "option") for opt in _options(parser, words)
                        if opt.startswith(fragment)), fragment)

    def _values(self, action: argparse.Action | None, sub: str, fragment: str,
                exclude: set[str] | frozenset[str] = frozenset()) -> dict:
        if action is None:
            return _result((), fragment)
        if action.choices is not None:
            return _result(((str(c), "state" if c in _STATE_VALUES else "choice")
                            for c in action.choices if str(c).startswith(fragment)), fragment)
        if action.dest in _ID_DESTS:
            return _result([(i, kind) for i, kind in self._ids(sub, fragment) if i not in exclude],
                           fragment, ordered=True)
        if action.dest == _SCHEDULE_DEST:
            return _result(self._schedule_ids(sub, fragment), fragment, ordered=True)
        return _result((), fragment)

    def _schedule_ids(self, sub: str, fragment: str) -> list[tuple[str, str]]:
        """(id, state) of the schedules *sub* can act on, newest first."""
        magics = find_magics(self.shell)
        d = None if magics is None else magics._dispatcher
        if d is None or d.closed:
            return []
        states = _SCHEDULE_STATES.get(sub, ("active", "paused", "ended"))
        out = []
        for s in reversed(d.schedules()):
            status = s.status()
            if status.state.value in states and str(s.id).startswith(fragment):
                out.append((str(s.id), status.state.value))
        return out[:MAX_IDS]

    def _ids(self, sub: str, fragment: str) -> list[tuple[str, str]]:
        """(id, state) of the jobs *sub* can act on, newest first."""
        magics = find_magics(self.shell)
        d = None if magics is None else magics._dispatcher
        if d is None or d.closed:
            return []
        if sub in _ACTIVE_ONLY:
            states: Any = [s for s in JobState if s not in TERMINAL]
        elif sub in _FINISHED_ONLY:
            states = list(TERMINAL)
        else:
            states = None
        jobs = [j for j in d.registry.select(states) if str(j.id).startswith(fragment)]
        jobs.sort(key=lambda j: j.id, reverse=True)
        return [(str(job.id), job.state.value) for job in jobs[:MAX_IDS]]


_STATE_VALUES = {s.value for s in JobState}


def _split(rest: str) -> tuple[list[str], str]:
    """The complete words before the cursor, and the word being typed ('' after a space)."""
    words = rest.split()
    if rest[-1:].isspace() or not words:
        return words, ""
    return words[:-1], words[-1]


def _count_positionals(parser: argparse.ArgumentParser, words: list[str]) -> int:
    """How many positional values *words* already hold (skipping options and their values)."""
    count = 0
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            action = _action_for(parser, word.partition("=")[0])
            skip = action is not None and _takes_value(action) and "=" not in word
            continue
        count += 1
    return count


def install(shell: Any, subcommands: Mapping[str, argparse.ArgumentParser],
            cell_parser: argparse.ArgumentParser) -> FrostMatcher | None:
    """Add a `FrostMatcher` to *shell*'s completer, replacing any earlier one.

    *subcommands* maps each ``%frost`` subcommand to its parser; *cell_parser*
    is ``%%frost``'s.
    """
    completer = getattr(shell, "Completer", None)
    matchers = getattr(completer, "custom_matchers", None)
    if matchers is None:
        return None
    uninstall(shell)
    matcher = FrostMatcher(shell, subcommands, cell_parser)
    matchers.append(matcher)
    return matcher


def uninstall(shell: Any) -> None:
    """Remove every nbfrost matcher from *shell*'s completer (also ones left by
    an earlier copy of this module, after a reload)."""
    completer = getattr(shell, "Completer", None)
    matchers = getattr(completer, "custom_matchers", None)
    if matchers is None:
        return
    matchers[:] = [m for m in matchers
                   if getattr(m, "matcher_identifier", None) != IDENTIFIER]

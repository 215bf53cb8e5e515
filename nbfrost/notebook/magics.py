"""IPython integration: ``%load_ext nbfrost``, ``%%frost``, ``%frost`` and their settings.

``%%frost`` runs a cell in the background, in the user namespace, and
returns its `Tracker`; whatever the job prints, displays or raises appears
under the cell that queued it.  ``%frost <subcommand>`` queries and steers
the shell's default dispatcher.  `FrostMagics` is a traitlets
``Configurable``: set ``%config FrostMagics.workers = 8`` or
``c.FrostMagics.workers = 8`` in ``ipython_config.py``.

How output finds its cell: ipykernel keeps the parent header of every
output message (stream, display, update) in a `contextvars.ContextVar`.
`Dispatcher.queue` copies the context of the queuing cell and the worker
runs the job inside that copy, so ``print``, ``display()`` and the
tracebacks printed here carry the queuing cell's ``msg_id``, even while
another cell runs and after the queuing cell has finished.  The live badge
and the ``notify`` line use a context copied the same way.

Why one module: it is one `Magics` class, and its ``%frost``
subcommands are methods that share its lock, its dispatcher and its
settings; the badge, the cell runner, completion and frontends live in
their own modules.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import keyword
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, Unicode, observe

from .. import defaults, forward
from ..dispatcher import Dispatcher
from ..errors import JobNotFound
from ..states import SUCCEEDED, JobState
from ..tracker import Tracker, wait_interrupted
from . import frontends
from .badge import LiveTracker, live, print_notice
from .cell_runner import CellRunner, cell_number, compile_shell_cell
from .frontends import close_board
from .schedule_cell import LiveSchedule, ScheduledCellRunner, parse_at
from .shell import MAGICS_NAME, find_magics, get_dispatcher

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["FrostMagics", "LiveTracker", "get_dispatcher", "load_ipython_extension",
           "unload_ipython_extension"]

_STATES = [s.value for s in JobState]
#: The id the next dispatcher of the magics starts at, for the life of the
#: process: a dispatcher made after ``%reload_ext nbfrost`` (or after a
#: setting replaced the old one) goes on from its predecessor's ids, so that
#: ``%frost status 0`` never silently means another job.  A reload of the
#: ``nbfrost`` package does not re-run this module.
_next_ids = [0]
#: How many cancelled jobs the one-line note of an unload names.
_CANCELLED_SHOWN = 3
_F = TypeVar("_F", bound=Callable[..., Any])


def _cell_magic(name: str) -> Callable[[_F], _F]:
    # IPython types cell_magic(arg) as "the function, or a decorator" for
    # both spellings; with a name it is always the decorator.
    return cast("Callable[[_F], _F]", cell_magic(name))


def _line_magic(name: str) -> Callable[[_F], _F]:
    return cast("Callable[[_F], _F]", line_magic(name))


class _Subcommand(Protocol):
    """A ``%frost`` subcommand: a method that `magic_arguments` gave a parser."""

    parser: Any          # IPython's MagicArgumentParser
    argcmd_name: str

    def __call__(self, magics: FrostMagics, args: Any) -> Any: ...


# ----------------------------------------------------------------- argument checks
def _identifier(value: str, what: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise UsageError(f"{what} must be a Python identifier, got {value!r}")
    return value


def _push_names(values: list[str] | None) -> list[str]:
    names: list[str] = []
    for chunk in values or ():
        for name in chunk.split(","):
            name = name.strip()
            if name:
                names.append(_identifier(name, "--push names"))
    return names


def _live_schedules(d: Dispatcher) -> bool:
    """Whether *d* has schedules that have not ended (it is not idle then)."""
    return any(s.state.value != "ended" for s in d.schedules())


def _interval(text: str) -> float | str:
    """``--every``'s value: a number of seconds, or a string for `parse_interval`."""
    try:
        return float(text)
    except ValueError:
        return text


def _positive(value: float | None, what: str) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{what} must be a number of seconds > 0, got {value:g}")


# --------------------------------------------------------------------- magics
_EXAMPLES_CELL = """
Examples::

    %%frost -n load -o df
    import pandas as pd, time
    time.sleep(5)
    pd.DataFrame({"x": range(3)})      # the job's result, bound to df

    %%frost -n train -t ml --after 0 --timeout 600 --retries 2
    model.fit(df)                      # runs once job 0 succeeded

    %%frost --quiet
    print("captured, not shown")       # read it with %frost output ID

    %%frost --every 5m -n refresh      # a schedule: one badge, the latest run's output
    prices = fetch_prices()            # also --cron "0 * * * *" and --at 18:30

    %%frost --process -o total
    total = crunch(data)               # in a worker process: beyond the GIL, killable
    total

With ``--process`` (``-P``) the body runs in a worker process of the
dispatcher's process pool, in a fresh namespace holding the notebook
globals it reads (sent along; one that cannot be sent, such as an open
file, fails the job and is named).  Names it assigns stay in the worker;
the last expression's value comes back (``-o``).

With ``backend="dask"`` the body runs on a Dask worker in a fresh namespace;
``--push a,b`` ships the notebook variables ``a`` and ``b`` with it.  On the
thread backend the namespace is shared, so ``--push`` is accepted and ignored.
"""


@magics_class
class FrostMagics(Magics):
    """The ``%%frost`` and ``%frost`` magics, and the shell's default dispatcher.

    Settings are traitlets, so ``%config FrostMagics.workers = 8`` (or
    ``c.FrostMagics.workers = 8`` in ``ipython_config.py``) configures them.
    How a change reaches a dispatcher that already exists:

    - ``workers`` resizes it at once (`Dispatcher.resize`; running jobs are
      never stopped by a shrink).
    - ``expiry``, ``grace`` and ``output_budget`` apply at once.
    - ``backend``, ``max_queue``, ``output_cap``, ``dask_address`` and
      ``history`` cannot change on a live pool: the next ``%%frost`` (or
      ``get_dispatcher()``) after the current dispatcher is idle shuts it
      down and makes a new one with the new settings.  Until then the old
      one keeps running jobs.  The new registry starts empty; trackers of
      earlier jobs keep working.
    - ``route_output`` and ``notify`` apply to jobs queued afterwards.
    - ``forward_budget`` and ``forward_rate`` apply at once;
      ``failure_notices`` to the next dispatcher.
    """

    workers = Int(defaults.WORKERS, min=1,
                  help="How many jobs run at once.  Applies live (resize).").tag(config=True)
    expiry = Float(defaults.EXPIRY, min=0.0, allow_none=True,
                   help="Seconds a finished job stays queryable (None: forever).  Applies live."
                   ).tag(config=True)
    max_queue = Int(defaults.MAX_QUEUE, min=0, help="How many jobs may wait at once (0: unbounded).  "
                    "Applies to the next dispatcher, once the current one is idle.").tag(config=True)
    output_cap = Int(defaults.OUTPUT_CAP, min=0,
                     help="Characters of output kept per job.  Applies to the next dispatcher."
                     ).tag(config=True)
    output_budget = Int(defaults.OUTPUT_BUDGET, min=0, allow_none=True,
                        help="Characters of output kept by all finished jobs together; past "
                        "it the oldest jobs' output is dropped, leaving a note (None: no "
                        "limit).  Applies live.").tag(config=True)
    route_output = Bool(True, help="Show a job's output under the cell that queued it.  When "
                        "False, jobs run without the cell's context and ipykernel sends their "
                        "output to the most recently executed cell.").tag(config=True)
    process_workers = Int(defaults.PROCESS_WORKERS, min=1, max=defaults.MAX_PROCESS_WORKERS,
                          help="Worker processes for %%frost --process cells and "
                          "d.queue(..., process=True) (default: one per core).  Applies live."
                          ).tag(config=True)
    backend = Enum(["threads", "processes", "dask"], "threads",
                   help="'threads' (in this process), 'processes' (every cell in a worker "
                   "process) or 'dask' (a distributed cluster).  "
                   "Applies to the next dispatcher, once the current one is idle.").tag(config=True)
    dask_address = Unicode("", help="Scheduler address for backend='dask' (e.g. "
                           "'tcp://127.0.0.1:8786'); empty starts a LocalCluster.").tag(config=True)
    notify = Bool(False, help="Print a one-line notice under the queuing cell when a job "
                  "ends.").tag(config=True)
    history = Unicode("", help="File to record every job transition in (SQLite); read it "
                      "with %frost history.  Empty: no history.").tag(config=True)
    grace = Float(defaults.GRACE, min=0.0, help="Seconds running jobs get to stop at unload, and "
                  "interrupted jobs before their worker is replaced.").tag(config=True)
    forward_budget = Int(defaults.FORWARD_BUDGET, min=0,
                         help="Characters of one job's output shown in the notebook; past it "
                         "one marker line says how much was left out (%frost output ID has it "
                         "all).  Applies at once to jobs that start afterwards.").tag(config=True)
    forward_rate = Float(float(defaults.FORWARD_RATE), min=1.0,
                         help="Characters per second all jobs together send to the notebook, on "
                         "average (bursts up to twice that).  Applies at once.").tag(config=True)
    failure_notices = Bool(True, help="Print a one-line notice under the queuing cell when a "
                           "job queued with the Python API (d.queue) fails.  Applies to the "
                           "next dispatcher.").tag(config=True)

    # Config loaded in __init__ (a %config made before %load_ext) fires the
    # observers below before __init__ has set the instance's own value.
    _dispatcher: Dispatcher | None = None

    _RECREATE = ("backend", "max_queue", "output_cap", "dask_address", "history",
                 "failure_notices")

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._lock = threading.RLock()  # guards _dispatcher, _stale, _dashboards
        self._dispatcher: Dispatcher | None = None
        self._stale = False
        self._dashboards: list[Any] = []
        self._binding: dict[int, threading.Event] = {}  # job id -> -o bound (Dask)
        # Gates of this execution's %%frost cells: the badge's display opens
        # each; whatever is still closed when the cell ends opens then (a
        # badge that was never displayed must not hold the output back).
        self._gates: list[forward.Gate] = []
        if shell is not None:
            shell.events.register("post_run_cell", self._open_gates)

    def _open_gates(self, result: Any = None) -> None:
        with self._lock:
            gates, self._gates = self._gates, []
        for gate in gates:
            gate.open()

    @property
    def _ip(self) -> InteractiveShell:
        """The shell these magics are registered on."""
        shell = self.shell
        if shell is None:
            raise RuntimeError("FrostMagics is not attached to an IPython shell")
        return shell

    # ------------------------------------------------------------ dispatcher
    def get_dispatcher(self) -> Dispatcher:
        """The shell's default dispatcher, made from the traits on first use.

        If a setting that needs a new dispatcher changed and the current one
        is idle, the current one is shut down and replaced here.
        """
        old = None
        with self._lock:
            d = self._dispatcher
            if d is not None and not d.closed and not (self._stale and not d.registry.active_jobs()
                                                       and not _live_schedules(d)):
                return d
            new = self._make_dispatcher()
            old, self._dispatcher, self._stale = d, new, False
        if old is not None:
            _next_ids[0] = max(_next_ids[0], old.registry.next_id)
            if not old.closed:
                old.shutdown(wait=True)
        return new

    def _make_dispatcher(self) -> Dispatcher:
        options: dict[str, Any] = {}
        if self.history:
            options["history"] = self.history
        if self.backend == "dask" and self.dask_address:
            options["address"] = self.dask_address
        d = Dispatcher(workers=self.workers, expiry=self.expiry, max_queue=self.max_queue,
                       backend=self.backend, output_cap=self.output_cap,
                       output_budget=self.output_budget, grace=self.grace,
                       forward_budget=self.forward_budget, forward_rate=self.forward_rate,
                       failure_notices=self.failure_notices,
                       process_workers=self.process_workers, **options)
        d.registry.start_ids_at(_next_ids[0])
        return d

    @observe("workers")
    def _workers_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            d.resize(change["new"])

    @observe("process_workers")
    def _process_workers_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            d.process_workers = change["new"]

    @observe("expiry")
    def _expiry_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            d.expiry = change["new"]

    @observe("output_budget")
    def _output_budget_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            d.output_budget = change["new"]

    @observe("grace")
    def _grace_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            d.grace = float(change["new"])

    @observe("forward_budget", "forward_rate")
    def _forward_changed(self, change: Any) -> None:
        d = self._dispatcher
        if d is not None and not d.closed:
            if change["name"] == "forward_budget":
                d.forward_budget = change["new"]
            else:
                d.forward_bucket.rate = float(change["new"])
                d.forward_bucket.burst = 2.0 * float(change["new"])

    @observe(*_RECREATE)
    def _recreate_changed(self, change: Any) -> None:
        with self._lock:
            d = self._dispatcher
            if d is None or d.closed:
                return
            self._stale = True
            active = len(d.registry.active_jobs())
        if active:
            print(f"nbfrost: {change['name']} = {change['new']!r} applies once the "
                  f"{active} queued/running job(s) of the current dispatcher finish",
                  file=sys.stderr)

    def close(self) -> None:
        """Shut the dispatcher down: queued jobs are cancelled, running jobs
        get ``grace`` seconds, then are cancelled with an interrupt.  Open
        dashboards are closed, and the badges' ticker stops."""
        with self._lock:
            d, self._dispatcher = self._dispatcher, None
            dashboards, self._dashboards = self._dashboards, []
        for dash in dashboards:
            closer = getattr(dash, "close", None)
            if callable(closer):
                closer()
        try:
            if d is not None:
                active = d.registry.active_jobs()
                d.shutdown(wait=True, cancel_pending=True, timeout=self.grace)
                _next_ids[0] = max(_next_ids[0], d.registry.next_id)
                _say_cancelled(active)
        finally:
            # After the shutdown, so the badges got their final state.
            close_board(self._ip)

    # ------------------------------------------------------------- %%frost
    @magic_arguments(name="%frost")
    @argument("-n", "--name", default=None, help="Job name (default: In[N]).")
    @argument("-t", "--tag", action="append", default=[], metavar="TAG",
              help="A tag to filter on; repeat for more.")
    @argument("-o", "--output", default=None, metavar="VAR",
              help="Bind the job's result (the value of the last expression) to VAR "
                   "when it succeeds.")
    @argument("--after", action="append", type=int, default=[], metavar="ID",
              help="Run only after job ID succeeded; repeat for more.")
    @argument("--timeout", type=float, default=None, metavar="S",
              help="Fail the job if it runs longer than S seconds.")
    @argument("--retries", type=int, default=0, metavar="N",
              help="Run a failing job up to N more times.")
    @argument("--quiet", action="store_true",
              help="Capture the job's output without showing it (see %%frost output ID).")
    @argument("-P", "--process", action="store_true",
              help="Run the body in a worker process (beyond the GIL; cancel and --timeout "
                   "kill it).  The notebook globals it reads are sent along; names it "
                   "assigns stay in the worker; -o binds the last expression's value.")
    @argument("--push", action="append", default=None, metavar="a,b",
              help="Dask backend: notebook variables to send with the job.  Ignored on "
                   "the thread backend, where the namespace is shared.")
    # Schedules: the body runs on a rule instead of once (see schedule_cell.py).
    @argument("--every", default=None, metavar="INTERVAL",
              help="Run the cell every INTERVAL (30s, 5m, 1h, or seconds) instead of once.")
    @argument("--cron", default=None, metavar="EXPR",
              help='Run the cell on a cron rule ("0 * * * *"; 6 fields: seconds first).')
    @argument("--at", default=None, metavar="TIME",
              help="Run the cell once at TIME: HH:MM today (tomorrow if past) or an ISO date-time.")
    @argument("--tz", default=None, metavar="ZONE", help="Time zone of --cron (default: local).")
    @argument("--max-runs", type=int, default=None, metavar="N", help="End the schedule after N runs.")
    @argument("--jitter", type=float, default=0.0, metavar="S",
              help="Start each run up to S seconds late (random).")
    @argument("--overlap", choices=["skip", "queue", "allow"], default="skip",
              help="A run due while the previous one runs: skip it (default), queue it, or allow it.")
    @argument("--stop-on-failure", action="store_true", help="End the schedule when a run fails.")
    @_cell_magic("frost")
    def frost_cell(self, line: str, cell: str) -> LiveTracker | LiveSchedule | None:
        """Run this cell in the background and return its tracker.

        The body is compiled at once: a syntax error shows like a normal
        cell's and nothing is queued.  The body runs in the notebook's
        namespace; the value of its last expression is the job's result.
        Whatever it prints, displays or raises appears under this cell, even
        after the cell has finished and while other cells run.  The cell's
        output is a live status badge, and ``_`` is the tracker.
        """
        args = self._parse(self.frost_cell, line, "%%frost")
        if args.output is not None:
            _identifier(args.output, "-o")
        _positive(args.timeout, "--timeout")
        if args.retries < 0:
            raise UsageError(f"--retries must be >= 0, got {args.retries}")
        rules = [f"--{k}" for k in ("every", "cron", "at") if getattr(args, k) is not None]
        if len(rules) > 1:
            raise UsageError(f"%%frost: {' and '.join(rules)} cannot be combined; give one rule")
        if rules and args.after:
            raise UsageError("%%frost: --after does not apply to a schedule; start the "
                             "schedule after the job ends instead")
        push = _push_names(args.push)
        shell = self._ip
        try:
            code = compile_shell_cell(shell, line, cell)
        except (SyntaxError, OverflowError, ValueError, TypeError) as exc:
            self._show_compile_error(exc)
            return None
        d = self.get_dispatcher()
        name = args.name if args.name is not None else f"In[{cell_number(shell)}]"
        process = args.process or d.backend.name == "processes"
        if process:
            runner = self._process_cell(code)
        elif not d.backend.shares_namespace:
            missing = [n for n in push if n not in shell.user_ns]
            if missing:
                raise UsageError(f"--push: no variable named {missing[0]!r} in the namespace; "
                                 "define it first or drop it from --push")
            runner = d.backend.make_cell_job(
                code.source, code.filename, {n: shell.user_ns[n] for n in push})
        else:
            runner = (ScheduledCellRunner if rules else CellRunner)(
                shell, code, args.output, self.route_output)
            with self._lock:
                self._gates.append(runner.gate)
        if rules:
            return self._schedule_cell(d, args, runner, name)
        try:
            tracker = d.queue(runner, name=name, tags=args.tag, timeout=args.timeout,
                              retries=args.retries, after=args.after, quiet=args.quiet,
                              process=args.process)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%%frost: {exc}") from None
        if not isinstance(runner, CellRunner) and args.output is not None:
            self._bind_later(tracker, args.output)
        if self.notify:
            self._notify_later(tracker)
        return live(tracker)

    def _process_cell(self, code: Any) -> Callable[[], Any]:
        """The job of a ``%%frost --process`` cell: its body and the notebook
        globals it reads (see `ProcessCellJob`)."""
        from ..backends.processes import ProcessCellJob, names_read

        ns = self._ip.user_ns
        push = {n: ns[n] for n in names_read(code.source) if n in ns and n != "__builtins__"}
        gate = forward.Gate()
        try:
            runner = ProcessCellJob(code.source, code.filename, push, gate=gate)
        except SyntaxError as exc:  # top-level await: only the notebook's loop can run it
            raise UsageError(f"%%frost --process: {exc.msg} (line {exc.lineno}); a process "
                             "cell cannot use top-level await; wrap it in asyncio.run(...) "
                             "or run the cell without --process") from None
        with self._lock:
            self._gates.append(gate)
        return runner

    def _schedule_cell(self, d: Dispatcher, args: Any, runner: Any, name: str) -> LiveSchedule:
        """The ``--every/--cron/--at`` half of ``%%frost``."""
        options = dict(name=name, tags=args.tag, timeout=args.timeout, retries=args.retries,
                       quiet=args.quiet, process=args.process)
        rule = dict(max_runs=args.max_runs, jitter=args.jitter, overlap=args.overlap,
                    stop_on_failure=args.stop_on_failure)
        try:
            if args.every is not None:
                schedule = d.every(_interval(args.every), runner, **options, **rule)
            elif args.cron is not None:
                schedule = d.cron(args.cron.strip("'\""), runner, tz=args.tz, **options, **rule)
            else:
                from datetime import datetime

                when = parse_at(args.at, datetime.fromtimestamp(d.registry.clock()))
                schedule = d.at(when, runner, **options, jitter=args.jitter)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%%frost: {exc}") from None
        return LiveSchedule(schedule, runner)

    def _show_compile_error(self, exc: BaseException) -> None:
        """Show a compile error like IPython does for a normal cell, and
        make the cell count as failed (so "Run All" stops here)."""
        shell = self._ip
        filename = getattr(exc, "filename", None)
        shell.showsyntaxerror(filename=filename)
        result = getattr(shell.displayhook, "exec_result", None)
        if result is None:
            raise exc
        result.error_in_exec = exc

    def _bind_later(self, tracker: Tracker, var: str) -> None:
        # Jobs not run by CellRunner (Dask) return their value to this
        # process only when they end; bind it from the done callback.  Done
        # callbacks run just after waiters wake, so %frost wait also waits
        # for the pending binding (see _cmd_wait).
        ns = self._ip.user_ns
        bound = threading.Event()
        with self._lock:
            self._binding[tracker.id] = bound

        def bind(t: Tracker) -> None:
            try:
                if t.state is SUCCEEDED:
                    ns[var] = t._job._value
            finally:
                with self._lock:
                    self._binding.pop(t.id, None)
                bound.set()

        tracker.add_done_callback(bind)

    def _notify_later(self, tracker: Tracker) -> None:
        holder = [contextvars.copy_context()]
        gate = getattr(tracker._job._fn, "gate", None)

        def notice(t: Tracker) -> None:
            print_notice(t, holder.pop(), gate)

        tracker.add_done_callback(notice)

    # -------------------------------------------------------------- %frost
    @_line_magic("frost")
    def frost_line(self, line: str = "") -> Any:
        # The docstring is assembled below from the subcommands' parsers.
        words = line.split(None, 1)
        if not words:
            return self._show_dashboard()
        sub, rest = words[0], (words[1] if len(words) > 1 else "")
        fn = _SUBCOMMANDS.get(sub)
        if fn is None:
            close = difflib.get_close_matches(sub, list(_SUBCOMMANDS), n=1, cutoff=0.0)
            hint = f"; did you mean '%frost {close[0]}'?" if close else ""
            raise UsageError(f"%frost: unknown subcommand {sub!r}{hint} "
                             "(%frost help lists them all)")
        args = self._parse(fn, rest, f"%frost {sub}")
        try:
            return fn(self, args)
        except JobNotFound as exc:
            raise UsageError(f"%frost {sub}: {exc}") from None

    @staticmethod
    def _parse(fn: Any, argstring: str, prog: str) -> Any:
        """Parse with the magic_arguments parser of *fn*; every failure is a UsageError."""
        parser = fn.parser
        try:
            return parser.parse_argstring(argstring)
        except UsageError as exc:
            raise UsageError(f"{prog}: {exc}\nusage: {_usage_of(parser)}") from None
        except (SystemExit, ValueError) as exc:  # unbalanced quotes; argparse exits
            raise UsageError(f"{prog}: cannot parse {argstring!r} ({exc})\n"
                             f"usage: {_usage_of(parser)}") from None

    def _show_dashboard(self) -> Any:
        d = self.get_dispatcher()
        if _in_terminal(self._ip):  # no widgets there: a text summary, not a widget's repr
            return _JsonText(text_summary(d))
        try:
            from .dashboard.widget import Dashboard
        except ImportError as exc:
            print(f"nbfrost: the dashboard is unavailable ({exc}); showing the jobs table",
                  file=sys.stderr)
            return d.to_frame()
        dash = Dashboard(d)
        with self._lock:
            self._dashboards.append(dash)
        shell = self._ip
        if getattr(shell, "kernel", None) is not None and frontends.kind(shell) == frontends.HEADLESS:
            frontends.board(shell).resend_at_cell_end(dash.resend_state)
        return dash

    # Subcommands: each has its own magic_arguments parser; frost_line
    # dispatches on the first word.
    @magic_arguments(name="frost dashboard")
    def _cmd_dashboard(self, args: Any) -> Any:
        """Show the live dashboard (the jobs table if ipywidgets is missing)."""
        return self._show_dashboard()

    @magic_arguments(name="frost jobs")
    @argument("--state", action="append", choices=_STATES, default=None,
              help="Only jobs in this state; repeat for more.")
    @argument("--name", default=None, help="Only jobs with this name (a glob like 'load*' works).")
    @argument("--tag", default=None, help="Only jobs with this tag.")
    def _cmd_jobs(self, args: Any) -> Any:
        """The jobs as a pandas DataFrame, one row per job, indexed by id."""
        return self.get_dispatcher().to_frame(state=args.state, name=args.name, tag=args.tag)

    @magic_arguments(name="frost status")
    @argument("id", type=int, help="Job id.")
    @argument("--json", action="store_true", help="The status as JSON text.")
    def _cmd_status(self, args: Any) -> Any:
        """A job's status (a JobStatus, or JSON text with --json)."""
        status = self.get_dispatcher().status(args.id)
        return _JsonText(status.to_json(indent=2)) if args.json else status

    @magic_arguments(name="frost wait")
    @argument("ids", type=int, nargs="*", metavar="ID",
              help="Jobs to wait for (default: every queued or running job).")
    @argument("--timeout", type=float, default=None, metavar="S", help="Give up after S seconds.")
    def _cmd_wait(self, args: Any) -> Any:
        """Wait until jobs end; returns their statuses.

        The Stop button stops the wait, not the jobs: it shows which jobs
        keep running and how to cancel them (a WaitInterrupted, which is a
        KeyboardInterrupt)."""
        if args.timeout is not None and args.timeout < 0:
            raise UsageError(f"--timeout must be >= 0, got {args.timeout:g}")
        d = self.get_dispatcher()
        trackers = ([d.tracker(i) for i in args.ids] if args.ids
                    else d.registry.active_jobs())
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        if d.wait(trackers, timeout=args.timeout):
            with self._lock:
                binding = [self._binding.get(t.id) for t in trackers]
            try:
                for event in binding:
                    if event is not None:
                        event.wait(None if deadline is None
                                   else max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                raise wait_interrupted(t._job for t in trackers) from None
        else:
            left = [t.id for t in trackers if not t.done()]
            print(f"nbfrost: still not done after {args.timeout:g} s: "
                  f"{', '.join(map(str, left))}", file=sys.stderr)
        from ..job import StatusList
        return StatusList(t.status() for t in trackers)

    @magic_arguments(name="frost cancel")
    @argument("id", type=int, help="Job id.")
    @argument("--interrupt", action="store_true",
              help="Stop a running job now (raise JobCancelled in its thread).")
    def _cmd_cancel(self, args: Any) -> None:
        """Cancel a job: a queued one at once, a running one when it checks
        nbfrost.cancelled() (or at once with --interrupt)."""
        tracker = self.get_dispatcher().tracker(args.id)
        if tracker.cancel(interrupt=args.interrupt):
            how = ("cancelled" if tracker.done()
                   else "asked to stop (it ends when it checks nbfrost.cancelled())")
            print(f"job {tracker.id} {how}")
        else:
            print(f"job {tracker.id} had already {tracker.state.value}")

    @magic_arguments(name="frost output")
    @argument("id", type=int, help="Job id.")
    def _cmd_output(self, args: Any) -> None:
        """Print everything the job wrote to stdout and stderr so far."""
        tracker = self.get_dispatcher().tracker(args.id)
        out = tracker.output
        if out:
            print(out, end="" if out.endswith("\n") else "\n")
        else:
            print(f"(job {tracker.id} wrote no output)", file=sys.stderr)

    @magic_arguments(name="frost result")
    @argument("id", type=int, help="Job id.")
    @argument("--timeout", type=float, default=None, metavar="S",
              help="Wait at most S seconds (default: until it ends).")
    def _cmd_result(self, args: Any) -> Any:
        """The job's result, waiting for it; raises JobFailed/JobCancelled as Tracker.result().

        For a failed job, the error shown is the job's own traceback."""
        if args.timeout is not None and args.timeout < 0:
            raise UsageError(f"--timeout must be >= 0, got {args.timeout:g}")
        return self.get_dispatcher().tracker(args.id).result(timeout=args.timeout)

    @magic_arguments(name="frost retry")
    @argument("id", type=int, help="Id of a finished job.")
    def _cmd_retry(self, args: Any) -> LiveTracker:
        """Queue a finished job again (same code, options); its output goes under this cell."""
        d = self.get_dispatcher()
        runner = d.tracker(args.id)._job._fn
        if isinstance(runner, CellRunner):
            # A fresh gate: the new attempt's output waits for this cell's badge.
            runner.gate = forward.Gate()
            with self._lock:
                self._gates.append(runner.gate)
        try:
            tracker = d.retry(args.id)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%frost retry: {exc}") from None
        return live(tracker)

    @magic_arguments(name="frost clear")
    def _cmd_clear(self, args: Any) -> None:
        """Remove every finished job from the registry now."""
        print(f"removed {self.get_dispatcher().clear()} finished job(s)")

    @magic_arguments(name="frost config")
    def _cmd_config(self, args: Any) -> dict[str, Any]:
        """The effective settings: the traits, and what the dispatcher really uses."""
        out: dict[str, Any] = {name: getattr(self, name) for name in sorted(
            self.trait_names(config=True))}
        d = self._dispatcher
        if d is None or d.closed:
            out["dispatcher"] = "not started (made on first use)"
        else:
            out["dispatcher"] = {"backend": d.backend.name, "workers": d.workers,
                                 "expiry": d.expiry, "max_queue": d.max_queue,
                                 "grace": d.grace, "output_budget": d.output_budget}
            if self._stale:
                out["pending"] = "a new dispatcher with the settings above, once this one is idle"
        return out

    @magic_arguments(name="frost history")
    def _cmd_history(self, args: Any) -> Any:
        """The job history file (FrostMagics.history) as a DataFrame."""
        if not self.history:
            raise UsageError("%frost history: history is off; turn it on with "
                             "%config FrostMagics.history = 'nbfrost-history.sqlite' "
                             "(it applies to the next dispatcher)")
        from ..history import history

        return history(self.history)

    # Schedules (d.every / d.cron / d.at, %%frost --every/--cron/--at).
    @magic_arguments(name="frost schedules")
    def _cmd_schedules(self, args: Any) -> Any:
        """The schedules: rule, state, next run, last run, runs, missed."""
        from ..schedules import ScheduleList

        return ScheduleList(s.status() for s in self.get_dispatcher().schedules())

    def _find_schedule(self, sub: str, schedule_id: int) -> Any:
        try:
            return self.get_dispatcher().schedule(schedule_id)
        except KeyError as exc:
            raise UsageError(f"%frost {sub}: {exc.args[0]}") from None

    @magic_arguments(name="frost pause")
    @argument("schedule_id", type=int, metavar="ID", help="Schedule id.")
    def _cmd_pause(self, args: Any) -> None:
        """Pause a schedule: no run comes due until it is resumed."""
        s = self._find_schedule("pause", args.schedule_id)
        print(f"schedule {s.id} paused" if s.pause() else f"schedule {s.id} is {s.state.value}")

    @magic_arguments(name="frost resume")
    @argument("schedule_id", type=int, metavar="ID", help="Schedule id.")
    def _cmd_resume(self, args: Any) -> None:
        """Resume a paused schedule, from its next due time after now."""
        s = self._find_schedule("resume", args.schedule_id)
        print(f"schedule {s.id} resumed" if s.resume() else f"schedule {s.id} is {s.state.value}")

    @magic_arguments(name="frost unschedule")
    @argument("schedule_id", type=int, metavar="ID", help="Schedule id.")
    @argument("--running", action="store_true", help="Cancel its queued or running run too.")
    def _cmd_unschedule(self, args: Any) -> None:
        """End a schedule for good (its running run goes on unless --running)."""
        s = self._find_schedule("unschedule", args.schedule_id)
        if s.cancel(running=args.running):
            print(f"schedule {s.id} ended")
        else:
            print(f"schedule {s.id} had already ended ({s.reason})")

    @magic_arguments(name="frost help")
    def _cmd_help(self, args: Any) -> None:
        """Print this help."""
        print(FrostMagics.frost_line.__doc__)


#: Jobs listed by the text summary of ``%frost`` in terminal IPython.
SUMMARY_JOBS = 10


def _in_terminal(shell: Any) -> bool:
    """True in terminal IPython (``ipython`` at a prompt), where no widget shows."""
    terminal = sys.modules.get("IPython.terminal.interactiveshell")
    cls = getattr(terminal, "TerminalInteractiveShell", None)
    return cls is not None and isinstance(shell, cls)


def text_summary(d: Dispatcher, newest: int = SUMMARY_JOBS) -> str:
    """What ``%frost`` shows where widgets cannot: the dashboard's header as
    text, and the *newest* jobs, one line each."""
    from ..formatting import duration, rate, window

    stats = d.stats()
    counts = "  ".join(f"{k} {v:,}" for k, v in stats["counts"].items())
    lines = [f"nbfrost {stats['backend']}: {stats['busy']}/{stats['workers']} workers busy, "
             f"throughput {rate(stats['throughput'])} "
             f"(last {window(stats['throughput_window'])}), held {stats['held']:,} of "
             f"{stats['submitted']:,}",
             counts]
    now = d.registry.clock()
    jobs = [j.snapshot(now) for j in d.registry.select(newest=newest)] if newest else []
    if jobs:
        width = max(len(str(s.id)) for s in jobs)
        names = min(40, max(len(s.name) for s in jobs))
        lines.append("")
        for st in jobs:
            took = duration(st.duration)
            error = f"  {st.error_type}" if st.error_type else ""
            lines.append(f"  {st.id:>{width}}  {st.state.value:<9}  {st.name[:names]:<{names}}  "
                         f"{took}{error}".rstrip())
        if stats["held"] > len(jobs):
            lines.append(f"  ... {stats['held'] - len(jobs):,} older: %frost jobs lists them all")
    lines.append("%frost status ID for one job; %frost help for every subcommand")
    return "\n".join(lines)


def _say_cancelled(jobs: list[Any]) -> None:
    """One line on stderr naming the jobs that an unload (``%unload_ext`` or
    ``%reload_ext nbfrost``) cancelled, if any."""
    gone = sorted((j for j in jobs if j.state is JobState.CANCELLED), key=lambda j: j.id)
    if not gone:
        return
    shown = ", ".join(f"{j.id} {j.name!r}" for j in gone[:_CANCELLED_SHOWN])
    more = f" and {len(gone) - _CANCELLED_SHOWN} more" if len(gone) > _CANCELLED_SHOWN else ""
    n = len(gone)
    print(f"nbfrost: unloading cancelled {n} unfinished job{'s' if n != 1 else ''} "
          f"(job{'s' if n != 1 else ''} {shown}{more}); new jobs get new ids",
          file=sys.stderr)


class _JsonText(str):
    """JSON text that displays as itself (not as a quoted Python string)."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


_SUBCOMMANDS: dict[str, _Subcommand] = {
    fn.argcmd_name.split()[1]: fn for fn in (
        FrostMagics._cmd_dashboard, FrostMagics._cmd_jobs, FrostMagics._cmd_status,
        FrostMagics._cmd_wait, FrostMagics._cmd_cancel, FrostMagics._cmd_output,
        FrostMagics._cmd_result, FrostMagics._cmd_retry, FrostMagics._cmd_clear,
        FrostMagics._cmd_config, FrostMagics._cmd_history, FrostMagics._cmd_schedules,
        FrostMagics._cmd_pause, FrostMagics._cmd_resume, FrostMagics._cmd_unschedule,
        FrostMagics._cmd_help)
}


def _usage_of(parser: Any) -> str:
    """A parser's usage line(s) without magic_arguments' reST ``::`` prefix."""
    text = parser.format_usage()
    return text.split("::", 1)[-1].strip("\n").strip()


def _usage() -> str:
    lines = ["Usage:"]
    for fn in _SUBCOMMANDS.values():
        lines.append("  " + _usage_of(fn.parser))
    lines.append("  %frost                (no subcommand: the dashboard)")
    return "\n".join(lines)


_LINE_DOC = """Query and steer the background jobs of this notebook.

{usage}

Subcommands:
{details}

Examples::

    %frost                       # the dashboard
    %frost jobs --state failed   # a DataFrame of the failed jobs
    %frost status 3 --json
    %frost wait 3 4 --timeout 60
    %frost cancel 5 --interrupt
    %frost output 3              # what job 3 printed
    x = %frost result 3
    %frost retry 3
    %frost schedules             # what %%frost --every/--cron/--at made
    %frost pause 0 / %frost resume 0 / %frost unschedule 0
    %config FrostMagics.workers = 8
    %frost config

Bad arguments raise UsageError; nothing is queued or changed.
"""


def _line_doc() -> str:
    details = []
    for sub, fn in _SUBCOMMANDS.items():
        summary = (fn.parser.description or "").strip()
        details.append(f"  {sub}")
        for text in summary.splitlines():
            details.append(f"      {text.strip()}")
    return _LINE_DOC.format(usage=_usage(), details="\n".join(details))


FrostMagics.frost_line.__doc__ = _line_doc()
FrostMagics.frost_cell.__doc__ = (FrostMagics.frost_cell.__doc__ or "") + _EXAMPLES_CELL


# ------------------------------------------------------------ module API
def load_ipython_extension(ipython: Any) -> None:
    """Register `FrostMagics` and its tab completion on *ipython* (once; a
    second call does nothing)."""
    if find_magics(ipython) is not None:
        return
    ipython.register_magics(FrostMagics(shell=ipython))
    from .completion import install

    # Tab completion of %frost / %%frost from their own parsers.
    install(ipython, {sub: fn.parser for sub, fn in _SUBCOMMANDS.items()},
            FrostMagics.frost_cell.parser)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo `load_ipython_extension`: shut the dispatcher down (queued jobs
    cancelled, running jobs given ``grace`` seconds), close dashboards, and
    remove the magics, the configurable and the tab completion."""
    from .completion import uninstall

    uninstall(ipython)
    magics = find_magics(ipython)
    if magics is None:
        return
    try:
        magics.close()
    finally:
        manager = ipython.magics_manager
        for kind in ("line", "cell"):
            table = manager.magics[kind]
            for name, fn in list(table.items()):
                if getattr(fn, "__self__", None) is magics:
                    del table[name]
        open_gates = getattr(magics, "_open_gates", None)
        if open_gates is not None:
            with contextlib.suppress(ValueError):  # never registered (no shell at construction)
                ipython.events.unregister("post_run_cell", open_gates)
            open_gates()
        if manager.registry.get(MAGICS_NAME) is magics:
            del manager.registry[MAGICS_NAME]
        configurables = getattr(ipython, "configurables", None)
        if configurables is not None and magics in configurables:
            configurables.remove(magics)

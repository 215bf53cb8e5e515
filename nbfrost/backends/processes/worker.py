"""The worker side of the process pool: what runs inside each worker process.

A worker is started as ``python -m nbfrost.backends.processes.worker IN OUT``
(see `pool` for why not ``fork``); *IN* and *OUT* are the numbers of the
two pipe ends it inherited.  It runs one job at a time on its main thread
and talks to the notebook's process over those pipes only, in frames (see
*The wire format* below).

Threads in a worker:

* the main thread runs the jobs: it takes a `Task` and its payload from an
  inbox, runs ``fn(*args, **kwargs)`` with a `JobContext` of its own, and
  sends a `Done` and the pickled outcome;
* ``reader`` reads frames from the notebook's process: a `Task` goes to the
  inbox, a `Cancel` sets the running job's cancel flag (so
  ``nbfrost.cancelled()`` turns true), `Stop` ends the worker after its
  job.  End of file without `Stop` means the notebook's process is gone:
  the worker exits at once, whatever it runs, so no worker outlives its
  kernel;
* ``sender`` ships what a running job printed (`Output`) and its latest
  progress (`Progress`), at most every `TICK` seconds, and only while there
  is something to send: a job that prints nothing costs no message.  What a
  job printed up to its end is sent before its `Done`, so its output comes
  first.  It also sends the reader's `Answer` to a `Recall`: the reader
  never writes, so it always drains the pipe from the notebook (were it to
  wait for the pipe home while the main thread writes a large result there,
  and the notebook's reader were writing a large task here, neither pipe
  would move).

SIGINT is ignored: "Interrupt kernel" signals the kernel's whole process
group, and a worker is stopped through its job (cancel, timeout), not by
that.

The wire format (version `PROTOCOL`): every frame is an 8-byte little-endian
length and that many bytes.  A message is a frame holding a pickled named
tuple of this module; a `Task` and a `Done` are followed by one more frame,
the payload, pickled with cloudpickle (``(fn, args, kwargs)`` and the
result or error).  The payload travels as its own frame so that a large
argument or result is written from, and read into, one buffer each: never
copied into another pickle.  The first frame each way is a `Setup`
(notebook → worker) and a `Ready` (worker → notebook), which carry the
version; either side rejects another version with an error saying so.
"""

from __future__ import annotations

import linecache
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any, NamedTuple

from ...capture import CURRENT, JobContext
from ...errors import JobCancelled, RemoteJobError
from ..remote import WorkerJob, format_remote_tb, portable_error, run_coroutine_watched

__all__ = ["PROTOCOL", "Answer", "Cancel", "Done", "Output", "Progress", "Ready", "Recall", "Setup",
           "Skip", "Stop", "Task",
           "read_frame", "read_message", "send_message", "write_frames", "main"]

#: Version of the wire format; both sides check it in the first frame.
#: 2: `Recall` and `Answer`.
PROTOCOL = 2

#: Seconds between two `Output`/`Progress` messages of a running job.
TICK = 0.05

_HEADER = struct.Struct("<Q")
#: Frames up to this size are written with their header in one call.
_SMALL = 1 << 16


# ------------------------------------------------------------------ messages
class Setup(NamedTuple):
    """Notebook → worker, first frame: the version and where to import from."""

    protocol: int
    sys_path: list[str]   # the notebook's sys.path, so its modules import here too


class Ready(NamedTuple):
    """Worker → notebook, first frame: it is set up and waits for tasks."""

    protocol: int
    pid: int


class Task(NamedTuple):
    """Notebook → worker: run a job's attempt; the payload frame follows."""

    job_id: int
    attempt: int       # 1 for the first run, +1 per retry
    ticket: int        # this sending of it (a recalled job may come back): see `Recall`
    output_cap: int    # characters of output sent home at most (then one more to mark the cut)
    sources: dict[str, list[str]]  # lines of notebook cells its code comes from (tracebacks)


class Cancel(NamedTuple):
    """Notebook → worker: a cooperative cancel of the running job."""

    job_id: int


class Skip(NamedTuple):
    """Notebook → worker: a job sent ahead was cancelled before it started;
    skip it (or, if it has started meanwhile, end the worker: it must not
    run).  Answered with a `Done` carrying `JobCancelled`."""

    job_id: int


class Recall(NamedTuple):
    """Notebook → worker: give back a job sent ahead if it has not begun
    (another process is free for it).  Decided at once by the worker's
    reader thread, even while a job runs, and answered by its sender
    thread: `Answer`.  By ticket, not job id:
    a job given back may be sent to the same worker again before the worker
    has dropped its first copy."""

    ticket: int


class Answer(NamedTuple):
    """Worker → notebook, to a `Recall`: *returned* True means the job will
    not run here (it goes back to the pool's queue); False means it has
    begun here, or ended, and its messages follow as usual."""

    ticket: int
    returned: bool


class Stop(NamedTuple):
    """Notebook → worker: exit once the current job (if any) is done."""


class Output(NamedTuple):
    """Worker → notebook: text a running job wrote to stdout or stderr."""

    job_id: int
    stream: str        # "stdout" or "stderr"
    text: str


class Progress(NamedTuple):
    """Worker → notebook: a running job's latest progress report."""

    job_id: int
    fraction: float | None
    message: str | None


class Done(NamedTuple):
    """Worker → notebook: an attempt ended; the payload frame (the result,
    or the error) follows."""

    job_id: int
    attempt: int
    ok: bool                 # True: the payload is the result; False: the error
    traceback: str | None    # the worker's formatted traceback, when it failed
    progress: float | None   # the last progress report
    message: str | None
    seconds: float           # how long the attempt ran (the worker's clock)


# ---------------------------------------------------------------- the wire
def write_frames(fd: int, *frames: Any) -> None:
    """Write *frames* (bytes-like) to *fd*, each with its length.

    Large frames are written from their own buffer (no copy); the caller
    serialises writers to one fd.

    Raises:
        OSError: the other end is gone (``BrokenPipeError``).
    """
    small: list[Any] = []  # small frames go out in one write, so the reader wakes once
    for data in frames:
        view = memoryview(data).cast("B")
        n = view.nbytes
        small.append(_HEADER.pack(n))
        if n <= _SMALL:
            small.append(view)
            continue
        _write_all(fd, memoryview(b"".join(small)))
        small = []
        _write_all(fd, view)
    if small:
        _write_all(fd, memoryview(b"".join(small)))


def send_message(fd: int, lock: threading.Lock, msg: tuple, payload: Any = None) -> None:
    """Write the message *msg* (and the *payload* frame after it, if any)
    to *fd*, holding *lock* so that frames of two writers never interleave.

    Raises:
        OSError: the other end is gone.
    """
    data = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
    with lock:
        if payload is None:
            write_frames(fd, data)
        else:
            write_frames(fd, data, payload)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def read_frame(stream: Any) -> bytearray | None:
    """The next frame from *stream* (a buffered binary reader), or None at
    end of file (the other side exited or closed the pipe)."""
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    return _read_exact(stream, _HEADER.unpack(head)[0])


def _read_exact(stream: Any, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = stream.readinto(view[pos:])
        if not got:
            return None
        pos += got
    return buf


def read_message(stream: Any) -> Any:
    """The next message from *stream*, None at end of file.

    Raises:
        ValueError: the frame is not a message of this format.
    """
    frame = read_frame(stream)
    if frame is None:
        return None
    try:
        return pickle.loads(frame)
    except Exception as exc:
        raise ValueError(f"nbfrost process pool: unreadable frame ({exc}); both sides must run "
                         f"the same nbfrost (wire format {PROTOCOL})") from exc


def check_protocol(version: Any, who: str) -> None:
    """Raise if *version* is not this module's `PROTOCOL`."""
    if version != PROTOCOL:
        raise ValueError(f"nbfrost process pool: the {who} speaks wire format {version!r}, this "
                         f"side {PROTOCOL}; both must run the same nbfrost installation")


# ------------------------------------------------------------ the worker
class _Channel:
    """The worker's end of its two pipes, and what it sends home."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.stream = open(read_fd, "rb", buffering=1 << 16)  # noqa: SIM115 - read until the process exits
        self.fd = write_fd
        self.lock = threading.Lock()  # guards writes to fd, so frames never interleave

    def send(self, msg: tuple, payload: Any = None) -> None:
        send_message(self.fd, self.lock, msg, payload)


class _ProcessContext(JobContext):
    """The `JobContext` of the job a worker runs: ``cancelled()`` reads the
    flag that a `Cancel` sets; ``report()`` and writes to stdout/stderr are
    queued for the sender thread."""

    __slots__ = ("channel", "outbox", "sent", "dirty", "wake", "shipping", "skip", "waiting",
                 "returned", "answers")

    job: WorkerJob | None

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel
        self.outbox: list[tuple[str, str]] = []  # (stream, text) not sent yet
        self.sent = 0           # characters of this job's output queued so far
        self.dirty = False      # progress changed since it was last sent
        self.wake = threading.Condition()  # guards job, outbox, sent, dirty
        # Held from taking the queue to having sent it, so that the sender
        # thread and the job's end never send a job's output out of order.
        self.shipping = threading.Lock()
        self.skip: set[int] = set()  # jobs to skip, from `Skip` (wake)
        self.waiting: set[int] = set()  # tickets of tasks read and not begun (wake)
        self.returned: set[int] = set()  # tickets given back to a `Recall` (wake)
        self.answers: list[Answer] = []  # for the sender thread to send (wake)

    def begin(self, task: Task) -> bool | None:
        """Make *task*'s job the running one: True; False if it is to be
        skipped (cancelled), None if it was given back (`Recall`)."""
        with self.wake:
            job_id = task.job_id
            self.waiting.discard(task.ticket)
            if task.ticket in self.returned:
                self.returned.discard(task.ticket)
                return None
            if job_id in self.skip:
                self.skip.discard(job_id)
                return False
            self.job = WorkerJob(job_id)
            self.cap = task.output_cap
            self.outbox = []
            self.sent = 0
            self.dirty = False
            return True

    def write(self, stream: str, text: str) -> None:
        """Queue *text* for home, up to one character past the cap (which
        makes the notebook's side cut there and say so)."""
        with self.wake:
            room = self.cap + 1 - self.sent
            if room <= 0 or not text:
                return
            if len(text) > room:
                text = text[:room]
            self.sent += len(text)
            first = not self.outbox and not self.dirty
            self.outbox.append((stream, text))
            if first:
                self.wake.notify()

    def give_back(self, ticket: int) -> bool:
        """A `Recall`: True if the task of *ticket* had not begun and now
        never will here.  Its `Answer` is queued for the sender thread."""
        with self.wake:
            returned = ticket in self.waiting  # else it runs or ran here (or is on its way)
            if returned:
                self.waiting.discard(ticket)
                self.returned.add(ticket)
            self.answers.append(Answer(ticket, returned))
            self.wake.notify()
            return returned

    def report(self, fraction: float | None, message: str | None) -> None:
        super().report(fraction, message)
        with self.wake:
            first = not self.outbox and not self.dirty
            self.dirty = True
            if first:
                self.wake.notify()

    def take(self) -> tuple[int, list[tuple[str, str]], Progress | None]:
        """What is queued now, taken: (job id, output pieces, progress)."""
        with self.wake:
            job = self.job
            if job is None:
                return -1, [], None
            out, self.outbox = self.outbox, []
            progress = Progress(job.id, job.progress, job.message) if self.dirty else None
            self.dirty = False
            return job.id, out, progress

    def ship(self) -> None:
        """Send what is queued (`Output` per stream run, then `Progress`)."""
        with self.shipping:
            self._ship()

    def _ship(self) -> None:
        job_id, out, progress = self.take()
        if out:
            merged: list[list[str]] = []
            for stream, text in out:
                if merged and merged[-1][0] == stream:
                    merged[-1][1] += text
                else:
                    merged.append([stream, text])
            for stream, text in merged:
                self.channel.send(Output(job_id, stream, text))
        if progress is not None:
            self.channel.send(progress)

    def finish(self) -> None:
        with self.wake:
            self.job = None


class _Stream:
    """``sys.stdout``/``sys.stderr`` in a worker: a job's writes go home,
    anything else to the real stream (the kernel's terminal)."""

    def __init__(self, name: str, target: Any) -> None:
        self._name = name
        self._target = target

    def write(self, text: str) -> int:
        ctx = getattr(CURRENT, "ctx", None)
        if ctx is not None and ctx.job is not None:
            if not isinstance(text, str):
                raise TypeError(f"write() argument must be str, not {type(text).__name__}")
            ctx.write(self._name, text)
            return len(text)
        return self._target.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        ctx = getattr(CURRENT, "ctx", None)
        if ctx is None or ctx.job is None:
            self._target.flush()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._target, attr)


def _sender(ctx: _ProcessContext, stopped: threading.Event) -> None:
    """Ship a running job's output and progress every `TICK` seconds, and
    the answers to recalls at once."""
    while not stopped.is_set():
        with ctx.wake:
            while not (ctx.outbox or ctx.dirty or ctx.answers) and not stopped.is_set():
                ctx.wake.wait()
            answers, ctx.answers = ctx.answers, []
            output = bool(ctx.outbox or ctx.dirty)
        try:
            for answer in answers:
                ctx.channel.send(answer)
            if not output:
                continue
            time.sleep(TICK)  # gather a tick's worth into one message
            ctx.ship()
        except OSError:
            return  # the notebook's process is gone; the reader ends the worker


def _reader(channel: _Channel, inbox: queue.SimpleQueue, ctx: _ProcessContext) -> None:
    """Read frames from the notebook's process until `Stop`."""
    try:
        while True:
            msg = read_message(channel.stream)
            if msg is None:
                os._exit(0)  # the notebook's process is gone: stop whatever runs now
            if isinstance(msg, Task):
                payload = read_frame(channel.stream)
                if payload is None:
                    os._exit(0)
                with ctx.wake:
                    ctx.waiting.add(msg.ticket)
                inbox.put((msg, payload))
            elif isinstance(msg, Recall):
                ctx.give_back(msg.ticket)  # the sender thread answers
            elif isinstance(msg, Cancel):
                with ctx.wake:
                    job = ctx.job
                    if job is not None and job.id == msg.job_id:
                        job._cancel_requested = True
            elif isinstance(msg, Skip):
                with ctx.wake:
                    job = ctx.job
                    if job is not None and job.id == msg.job_id:
                        os._exit(0)  # it started before the skip came: it must not run on
                    # Also when its task is not here yet (the skip can overtake
                    # it); a job that ended here just before leaves its id.
                    ctx.skip.add(msg.job_id)
            elif isinstance(msg, Stop):
                inbox.put(None)
                return
    except BaseException:
        os._exit(70)  # a broken stream: nothing sensible can follow


def run_task(ctx: _ProcessContext, task: Task, fn: Callable[..., Any], args: tuple,
             kwargs: dict) -> tuple[bool, Any, str | None]:
    """One attempt: ``(True, result, None)`` or ``(False, error, traceback)``.
    Never raises."""
    try:
        value = fn(*args, **kwargs)
        if value.__class__ is types.CoroutineType:
            # A cancel request cancels its task at its current ``await``.
            value = run_coroutine_watched(value, ctx.cancelled, 0.1)
        return True, value, None
    except BaseException as exc:  # a job never ends the worker
        tb = format_remote_tb(exc, run_task.__code__)
        exc.__traceback__ = None
        return False, portable_error(exc), tb


def _dumps_outcome(ok: bool, value: Any) -> tuple[bool, bytes]:
    import cloudpickle

    try:
        # Plain data pickles as well with the C pickler, at a fraction of the
        # cost; what it refuses (a class or function of the notebook, which
        # lives only by value here) goes through cloudpickle.
        return ok, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    try:
        return ok, cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = "result" if ok else "error"
        err = RemoteJobError(f"the job's {what} ({type(value).__name__}) could not be sent "
                             f"back from the worker process: {type(exc).__name__}: {exc}")
        return False, pickle.dumps(err)


def _serve(ctx: _ProcessContext, task: Task, payload: bytearray) -> tuple[Done, bytes] | None:
    """Run one task: its `Done` and the pickled outcome (after its output
    went home); None if it was given back to a `Recall` (nothing to send)."""
    for filename, lines in task.sources.items():
        # No mtime: linecache.checkcache keeps them.
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    begun = ctx.begin(task)
    if begun is None:
        return None
    if not begun:
        return (Done(task.job_id, task.attempt, False, None, None, None, 0.0),
                pickle.dumps(JobCancelled(f"job {task.job_id} was cancelled before it started")))
    started = time.monotonic()
    tb: str | None
    try:
        fn, args, kwargs = pickle.loads(payload)
    except BaseException as exc:
        ok, tb = False, format_remote_tb(exc)
        value: Any = RemoteJobError(f"the job could not be unpickled in the worker process: "
                                    f"{type(exc).__name__}: {exc}")
    else:
        ok, value, tb = run_task(ctx, task, fn, args, kwargs)
    job = ctx.job
    assert job is not None
    ctx.ship()  # what it printed goes first
    ctx.finish()
    ok, data = _dumps_outcome(ok, value)
    return Done(task.job_id, task.attempt, ok, tb, job.progress, job.message,
                time.monotonic() - started), data


def main(argv: list[str]) -> int:
    """The worker's main loop (``python -m nbfrost.backends.processes.worker IN OUT``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _Channel(int(argv[1]), int(argv[2]))
    setup = read_message(channel.stream)
    if setup is None:
        return 0
    check_protocol(getattr(setup, "protocol", None), "notebook's process")
    for entry in reversed(setup.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    sys.stdout = _Stream("stdout", sys.stdout)
    sys.stderr = _Stream("stderr", sys.stderr)
    ctx = _ProcessContext(channel)
    CURRENT.ctx = ctx
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    stopped = threading.Event()
    threading.Thread(target=_reader, args=(channel, inbox, ctx), name="reader",
                     daemon=True).start()
    sender = threading.Thread(target=_sender, args=(ctx, stopped), name="sender", daemon=True)
    sender.start()
    channel.send(Ready(PROTOCOL, os.getpid()))
    while True:
        item = inbox.get()
        if item is None:
            break
        task, payload = item
        item = None  # nothing of a job is kept while waiting for the next
        served = _serve(ctx, task, payload)
        del payload
        if served is None:
            continue
        done, data = served
        served = None
        try:
            channel.send(done, data)
        except OSError:
            return 0  # the notebook's process is gone
        del data
    stopped.set()
    with ctx.wake:
        ctx.wake.notify()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The one place where nbfrost's defaults are written.

A leaf module (it imports nothing from nbfrost), so that `Dispatcher`,
`Registry`, the backends, the capture router and the ``FrostMagics`` traits
all take their defaults from here and a default is changed in one place.
"""

from __future__ import annotations

import os

__all__ = ["WORKERS", "MAX_WORKERS", "EXPIRY", "MAX_QUEUE", "OUTPUT_CAP", "OUTPUT_BUDGET", "GRACE",
           "FORWARD_BUDGET", "FORWARD_RATE", "FAILURE_NOTICE_LIMIT", "FAILURE_NOTICE_WINDOW",
           "SCHEDULE_RECHECK", "SCHEDULE_RUNS_KEPT", "SCHEDULES_ENDED_KEPT",
           "PUBLISH_RATE", "PUBLISH_DUTY", "PUBLISH_MAX_DELAY",
           "PUBLISH_JOBS", "PUBLISH_SCHEDULES", "PUBLISH_TEXT", "PUBLISH_KEEP", "PUBLISH_HISTORY_FILES",
           "PUBLISH_HEARTBEAT",
           "PUBLISH_STALE", "PUBLISH_ACKS", "PUBLISH_SCAN_INTERVAL", "PUBLISH_FILE_MAX",
           "COMMAND_FILE_MAX", "COMMANDS_PER_TICK", "API_NEWEST", "API_NEWEST_MAX",
           "API_PRUNE_INTERVAL"]

#: How many jobs run at once: worker threads, or Dask task slots.
WORKERS = 4
#: The most ``workers`` a dispatcher may have (also through ``resize()`` and
#: ``%config FrostMagics.workers``).  Each worker is an OS thread (8 MiB of
#: stack address space, and a share of the GIL's hand-offs): past about a
#: thousand, more threads make a pool slower, not faster, and run into the
#: system's thread limits.  Jobs that mostly wait belong in one ``async def``
#: job, or on the Dask backend.
MAX_WORKERS = 1024
#: Seconds a finished job stays in the registry before it expires (None: forever).
EXPIRY: float | None = 300.0
#: How many jobs may wait to start at once; 0 means unbounded.
MAX_QUEUE = 0
#: Characters of stdout/stderr kept per job (1 MiB); the rest is cut with a note.
OUTPUT_CAP = 1 << 20
#: Characters of output kept by all *finished* jobs together (64 MiB); past
#: it the oldest finished jobs' output is replaced by a note (None: no limit).
OUTPUT_BUDGET: int | None = 64 << 20
#: Seconds an interrupted or timed-out job gets to stop before its worker
#: thread is abandoned and replaced (and that running jobs get at unload).
GRACE = 2.0
#: Characters of one job's output shown in the notebook (256 KiB, whole lines);
#: past it, one marker line says how much was not shown (capture is separate:
#: OUTPUT_CAP).  Smaller than the capture cap: a browser renders 256 KiB of
#: text in one output area without stalling, 1 MiB and more it does not.
FORWARD_BUDGET = 256 * 1024
#: Characters per second all jobs of one dispatcher send to the notebook
#: together, on average; bursts may reach twice that.
FORWARD_RATE = 256 * 1024
#: At most this many failure notices per FAILURE_NOTICE_WINDOW seconds; the
#: rest of the window becomes one summary line.
FAILURE_NOTICE_LIMIT = 10
FAILURE_NOTICE_WINDOW = 2.0

# Schedules (d.every / d.cron / d.at, %%frost --every/--cron/--at).
#: Longest the schedules' timer sleeps before it reads the clock again, in
#: seconds: after the machine slept or the wall clock jumped, missed runs
#: are noticed (and coalesced) within this long.
SCHEDULE_RECHECK = 30.0
#: Run ids a schedule remembers for ``Schedule.runs()`` (the runs themselves
#: live in the registry and expire like any job).
SCHEDULE_RUNS_KEPT = 1000
#: Ended schedules a dispatcher keeps listing in ``d.schedules()``; past it
#: the oldest ended ones are forgotten (active and paused ones never are).
SCHEDULES_ENDED_KEPT = 200

# -- Publishing: every process that runs jobs shows them to the Jupyter
# server of the same user through files (see docs/panel.md, "How publishing
# works").  NBFROST_PUBLISH=0 or Dispatcher(publish=False) turns it off.
#: Writes per second per dispatcher, at most (only when something changed);
#: also how often the inbox is read for commands.  4/s: a change or a
#: command is seen within 1 s.
PUBLISH_RATE = 4.0
#: The share of one core a publication's writes may take: a write that cost
#: t seconds of CPU defers the next by t / PUBLISH_DUTY (a burst of new jobs
#: in a loaded process is written less often), at most PUBLISH_MAX_DELAY s.
PUBLISH_DUTY = 0.02
PUBLISH_MAX_DELAY = 0.75
#: Jobs listed per dispatcher: the newest this many, plus every running one
#: (counts per state cover all jobs).  $NBFROST_PUBLISH_JOBS overrides it.
PUBLISH_JOBS = 500
#: Schedules listed per dispatcher: active and paused ones first, then the
#: ended ones it still keeps, newest first.
PUBLISH_SCHEDULES = 100
#: Characters kept of each published job's error, traceback and output tail
#: (the end of each: that is where the cause is).
PUBLISH_TEXT = 2000
#: Seconds a dispatcher's "last words" (its finished jobs, written at a clean
#: exit) and a dead process's entry stay visible before the server prunes them.
#: $NBFROST_PUBLISH_KEEP overrides it.
PUBLISH_KEEP = 24 * 3600.0
#: History files kept at most (the newest); pruning drops the oldest beyond it.
PUBLISH_HISTORY_FILES = 200
#: Seconds between heartbeats (an mtime touch of the live file, no rewrite).
PUBLISH_HEARTBEAT = 10.0
#: A live file of another host whose heartbeat is older than this is dead.
PUBLISH_STALE = 60.0
#: Command results (acks) a published file keeps, newest last.
PUBLISH_ACKS = 32
#: Seconds between walks for running jobs older than the newest PUBLISH_JOBS.
PUBLISH_SCAN_INTERVAL = 2.0
#: Bytes: a published file or a command larger than this is refused by readers.
PUBLISH_FILE_MAX = 64 << 20
COMMAND_FILE_MAX = 4096
#: Commands in one inbox read per tick, at most (the rest wait for the next).
COMMANDS_PER_TICK = 64
#: The REST API's page: default and largest ``newest``.
API_NEWEST = 200
API_NEWEST_MAX = 5000
#: Seconds between the server's prunes of expired history and dead entries.
API_PRUNE_INTERVAL = 60.0

# What a newcomer reads: throughput, cleared ids.
__all__ += ["THROUGHPUT_WINDOW", "CLEARED_RUNS", "EXIT_NOTICE_AFTER"]
#: Seconds over which ``stats()["throughput"]`` counts finished jobs.
THROUGHPUT_WINDOW = 60
#: Runs of cleared ids the registry remembers, so that a lookup of a cleared
#: job says "cleared", not "expired" (one clear() of every finished job is a
#: few runs; older runs are forgotten and the message says "expired or cleared").
CLEARED_RUNS = 1024

# The process pool (d.queue(..., process=True), %%frost --process, backend="processes").
__all__ += ["MAX_PROCESS_WORKERS", "PROCESS_WORKERS", "PROCESS_STOP_TIMEOUT"]
#: The most worker processes one process pool may have (``process_workers``):
#: each is a Python interpreter of its own (about 30 MB before the job's data).
MAX_PROCESS_WORKERS = 64
#: Worker processes of a dispatcher's process pool: one per core.  They
#: start on the first process job and are reused.
PROCESS_WORKERS = max(1, min(MAX_PROCESS_WORKERS, os.cpu_count() or 1))
#: Seconds a worker process gets to exit after it was told to stop (at
#: shutdown, after its job); then it is killed.
PROCESS_STOP_TIMEOUT = 5.0
#: Seconds a plain interpreter waits at exit for unfinished jobs before one
#: line on stderr says it is waiting (``Dispatcher(wait_at_exit=...)``).
EXIT_NOTICE_AFTER = 1.0

"""The process pool: jobs that run in worker processes of their own.

Threads share the GIL and cannot be killed; Dask needs a scheduler and
costs milliseconds per job.  This backend is a small pool of local worker
processes in the same registry as everything else: ``d.queue(fn, *args,
process=True)``, ``%%frost --process``, or ``Dispatcher(backend="processes")``.

Three parts: `worker` runs inside each worker process (the job, its
`JobContext`, the messages and the wire format), `cells` ships
``%%frost --process`` bodies with the notebook globals they read, and
`pool` is `ProcessBackend`, in the notebook's process.

Why an own pool and not loky or ``ProcessPoolExecutor`` (the decision, and
what it rests on):

* **Kill one job.**  ``cancel(interrupt=True)`` and timeouts must end a job
  within a second even in ``while True: pass`` or a C call, and the pool
  must go on.  Neither library can stop one task: ``ProcessPoolExecutor``
  only cancels queued futures, and ``terminate_workers()`` (3.14) ends the
  whole pool; loky has no per-task kill either.  Here each job runs alone
  in a known process, so the pool kills exactly that process (SIGKILL) and
  starts a new one.
* **A dying worker fails one job.**  Both libraries turn a worker's death
  into ``BrokenProcessPool`` / ``TerminatedWorkerError`` for *every*
  pending future and rebuild (loky) or give up (stdlib).  Here the reader
  of that process reaps it and fails only its job, with a `WorkerDied`
  that says how it ended (exit code or signal).
* **Live output and progress.**  Both return only a result.  A job's
  prints and ``nbfrost.progress``/``report`` must reach the notebook while
  it runs, and ``nbfrost.cancelled()`` must see a cooperative cancel: that
  needs a channel per worker both ways, which this pool has (one pipe each
  way per worker, read by one thread per worker here, two in the worker).
* **Safe start, notebook code.**  What loky does right is kept:
  processes are started with ``subprocess`` (``posix_spawn``/``vfork`` and
  ``exec`` of this Python, never a bare ``fork`` of a kernel whose threads
  hold locks), and jobs are pickled with cloudpickle, so functions,
  lambdas, classes and closures defined in the notebook's ``__main__``
  travel by value.  The worker gets the notebook's ``sys.path``, so its
  modules import there too.  It is not ``multiprocessing``'s spawn: that
  re-imports the parent's ``__main__`` script when it has one, and adds a
  manager thread and a feeder thread per queue; one pipe per worker is
  all this needs.

How each transition reaches the registry:

* **submit**: the job (``fn, args, kwargs``) is pickled once, at once, by
  the submitting thread (a job that does not pickle fails there, naming
  the argument or notebook variable that cannot be sent); a free process
  gets it at once, otherwise it waits in the pool's own FIFO.
* **started**: when it is sent to a free, ready process (which runs one
  job at a time): ``registry.start(job, "process-<slot>")``.  A busy
  process also holds the next job (`ProcessBackend.AHEAD`): sent ahead, it
  stays queued in the registry and is started there when the worker reports
  the job before it done, which is when the worker starts it, so a stream
  of short jobs loses no round trip between two of them.  Cancelled while
  ahead, it is skipped by the worker (`Skip`; a worker that had already
  begun it ends itself, and is replaced).  Its process dying puts it back
  at the head of the queue.  When a process goes idle and nothing is
  pending, a job sent ahead to a busy one is recalled (`Recall`, by the
  ticket of that sending): the worker decides at once, on its reader
  thread, and its sender thread answers (`Answer`), giving it back if it
  has not begun (it goes back to the head of the queue, and so to the idle
  process) or keeping it if it has (it is started here then, or at its
  first message, whichever comes first).
  While a recall is open the job is not started in the registry, and no
  further job is sent to that process.
* **output, progress**: the worker's sender thread ships them every 50 ms
  while there is something to ship; here they go through the job's
  `forward.Lane`, like a thread job's, so they land under the queuing cell
  in whole lines within the same budgets (``output_cap``,
  ``forward_budget``, ``forward_rate``).
* **finished**: `Done` and the pickled result or error (with the worker's
  traceback as its cause); retries run on the same process.
* **cancel**: a queued job is dropped when its turn comes (or skipped, if
  it was sent ahead); a cooperative
  cancel sends `Cancel` (``nbfrost.cancelled()`` turns true in the worker);
  an interrupt or timeout kills the process, which is replaced.
* **death**: end of file on a worker's pipe while it ran a job fails that
  job with `WorkerDied` (or retries it, with ``retries=``).

A worker process ends when its pipe from here closes, also when this
process dies without a shutdown, so no worker outlives its kernel.
"""

from .cells import ProcessCellJob, names_read
from .pool import ProcessBackend

__all__ = ["ProcessBackend", "ProcessCellJob", "names_read"]

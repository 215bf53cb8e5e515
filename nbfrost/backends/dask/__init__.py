"""The Dask backend: the same job lifecycle on a real `distributed` cluster.

Three parts: `worker` runs inside the Dask worker processes (the task, its
`JobContext`, the messages it sends back), `cells` ships ``%%frost`` cell
bodies, and `client` is `DaskBackend`, in the notebook's process.

Only the runner differs from the thread backend; the registry still owns
every rule.  How each transition reaches the registry:

* **submit**: ``client.submit(run_job, ..., pure=False)``, one Dask task per
  attempt, so identical calls are never deduplicated.
* **started**: once an attempt has run for `START_REPORT_DELAY` on
  a worker, or at its first progress report, the worker-side wrapper logs
  a `Started` event (``Worker.log_event``) on a topic private to this
  backend; the scheduler forwards it to this client (``Client.subscribe_topic``).  So a
  job is ``running`` only once it runs on a worker, and ``worker`` is that
  worker's address.  A shorter attempt is reported started and finished
  together when its result arrives: one message less per job.  Both carry
  how long the attempt had run (the worker's monotonic clock), so
  ``started_at`` and ``duration`` are right to within the message's transit
  time.  The same event stream carries `Progress` reports.
* **finished**: the wrapper never raises; it returns an `AttemptResult`
  (result or error with the worker's traceback, captured output, last
  progress).  A done-callback on the Dask future hands it to this backend's one thread,
  ``nbfrost-dask-<n>``, which gathers finished futures in batches
  and calls ``registry.finish``.  If the "started" event is still in flight, the
  result starts the job first, so order never matters.
* **retries**: ``registry.finish`` says whether to run again; a new task is
  submitted and ``registry.restart`` counts the attempt (Dask's own
  ``retries=`` is not used, because it would hide the attempts).
* **cancel**: a queued job's task is taken off the cluster: the workers are
  told to skip it (``client.run``; a worker may already hold it in its
  ready queue), then its future is cancelled.  A running job is asked to
  stop through a `distributed.Event` per job that ``nbfrost.cancelled()``
  polls on the worker (at most every `POLL_INTERVAL`); the Dispatcher calls
  ``request_cancel`` for that.  Dask cannot stop a running thread:
  ``cancel(interrupt=True)`` and timeouts mark the job at once and set the
  flag, but a job that never checks ``nbfrost.cancelled()`` keeps its
  worker thread busy until it returns (its result is then dropped).

All registry calls happen on the backend thread (or the caller's thread for
``submit``), never on distributed's event-loop thread, so a slow user
callback cannot stall the client.
"""

from ...errors import RemoteJobError
from .cells import CellJob
from .client import DaskBackend

# RemoteJobError lives in nbfrost.errors; it is re-exported here, where it
# was first defined, so that existing imports keep working.
__all__ = ["CellJob", "DaskBackend", "RemoteJobError"]

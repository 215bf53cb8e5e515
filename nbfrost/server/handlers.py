"""The REST handlers (``jupyter_server`` ``APIHandler`` subclasses).

Each one is ``@tornado.web.authenticated`` and ``@authorized`` on the
``nbfrost`` resource (GET: read, POST: write), as jupyter-scheduler's and
ipyparallel's are; a request without credentials gets 403 and no data.
``APIHandler`` checks the XSRF token of cookie-authenticated POSTs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import defaults, published
from .store import NotAlive, NotFound, Store

__all__ = ["setup_handlers", "ProcessesHandler", "JobsHandler", "CommandHandler"]

AUTH_RESOURCE = "nbfrost"
_T = TypeVar("_T")


class _Handler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def store(self) -> Store:
        store: Store = self.settings["nbfrost_store"]
        return store

    async def _sessions(self) -> tuple[dict[str, str], list[str]]:
        """This server's kernel id -> notebook path, and its kernel ids."""
        sessions: dict[str, str] = {}
        try:
            for session in await self.session_manager.list_sessions():
                kernel = session.get("kernel") or {}
                if kernel.get("id") and session.get("path"):
                    sessions[kernel["id"]] = session["path"]
        except Exception:  # a session manager that fails must not hide the jobs
            self.log.warning("nbfrost: could not list sessions", exc_info=True)
        try:
            kernels = list(self.kernel_manager.list_kernel_ids())
        except Exception:
            kernels = []
        return sessions, kernels

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in the server's thread pool: reading and parsing the
        files (a big one takes a while) must not hold up the event loop that
        also carries every kernel's messages."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    def _error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message}))


class ProcessesHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        sessions, kernels = await self._sessions()
        await self._off_loop(self.store.maybe_prune)
        processes = await self._off_loop(self.store.processes, sessions, kernels)
        self.finish(json.dumps({"processes": processes, "now": time.time()}))


def _int_arg(handler: _Handler, name: str, default: int, maximum: int | None) -> int:
    raw = handler.get_argument(name, None)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0 or (maximum is not None and value > maximum):
        bound = f"between 0 and {maximum}" if maximum is not None else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


class JobsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            newest = _int_arg(self, "newest", defaults.API_NEWEST, defaults.API_NEWEST_MAX)
            offset = _int_arg(self, "offset", 0, None)
            states = [s for s in self.get_arguments("state") if s]
            process = self.get_argument("process", None) or None
            name = self.get_argument("name", None) or None
            tag = self.get_argument("tag", None) or None
            sessions, _kernels = await self._sessions()
            await self._off_loop(self.store.maybe_prune)
            jobs, total = await self._off_loop(self.store.jobs, states, process, name, tag, newest,
                                               offset, sessions)
        except ValueError as exc:
            self._error(400, str(exc))
            return
        self.finish(json.dumps({"jobs": jobs, "total": total, "now": time.time()}))


class CommandHandler(_Handler):
    """A job's command (``jobs/{job}/cancel``, ``.../retry``), a schedule's
    (``schedules/{schedule}/pause``, ``.../resume``, ``.../unschedule``) or
    the whole process's (``processes/{process}/cancel``: every queued and
    running job of it, in one command)."""

    @tornado.web.authenticated
    @authorized
    async def post(self, process: str, action: str, job: str | None = None,
                   schedule: str | None = None) -> None:
        if job is None and schedule is None:
            action = "cancel_all"
        body: Any = {}
        if self.request.body:
            try:
                body = json.loads(self.request.body)
            except ValueError:
                self._error(400, "the body must be JSON, e.g. {\"interrupt\": false}")
                return
        if not isinstance(body, dict):
            self._error(400, "the body must be a JSON object")
            return
        interrupt = body.get("interrupt", False)
        if not isinstance(interrupt, bool):
            self._error(400, f"interrupt must be true or false, got {interrupt!r}")
            return
        try:
            command = await self._off_loop(self.store.command, process, action,
                                           None if job is None else int(job), interrupt,
                                           None if schedule is None else int(schedule))
        except NotFound as exc:
            self._error(404, str(exc.args[0]))
            return
        except NotAlive as exc:
            self._error(409, str(exc))
            return
        self.set_status(202)
        self.finish(json.dumps({"accepted": True, "command": command}))


def setup_handlers(serverapp: Any) -> None:
    """Add the handlers under ``<base_url>nbfrost/api/`` and a `Store`."""
    web_app = serverapp.web_app
    web_app.settings["nbfrost_store"] = Store(published.root())
    base = url_path_join(web_app.settings["base_url"], "nbfrost", "api")
    pid = r"(?P<process>[A-Za-z0-9._-]+)"
    web_app.add_handlers(".*$", [
        (url_path_join(base, "processes"), ProcessesHandler),
        (url_path_join(base, "jobs"), JobsHandler),
        (url_path_join(base, "processes", pid, "jobs", r"(?P<job>[0-9]+)", r"(?P<action>cancel|retry)"),
         CommandHandler),
        (url_path_join(base, "processes", pid, r"(?P<action>cancel)"), CommandHandler),
        (url_path_join(base, "processes", pid, "schedules", r"(?P<schedule>[0-9]+)",
                       r"(?P<action>pause|resume|unschedule)"), CommandHandler),
    ])
    serverapp.log.info("nbfrost: job API at %s (reading %s)", base,
                       web_app.settings["nbfrost_store"].root)

"""A real Jupyter kernel for tests, with every iopub message collected on a
thread (shared by the kernel, Dask and history tests)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Kernel:
    """A real kernel and a thread that collects every iopub message."""

    def __init__(self) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(REPO))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[dict] = []
        self._cond = threading.Condition()  # guards messages
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._collect, name="test-iopub", daemon=True)
        self._pump.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        """The first message matching *predicate*, waiting up to *timeout* s."""
        def find():
            return next((m for m in self.messages if predicate(m)), None)

        with self._cond:
            assert self._cond.wait_for(find, timeout), "no matching iopub message"
            return find()

    def submit(self, code: str) -> str:
        return self.kc.execute(code)

    def reply(self, msg_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        # Its own output is complete once the kernel went idle for it.
        self.wait_for(lambda m: parent(m) == msg_id and m["msg_type"] == "status"
                      and m["content"]["execution_state"] == "idle")
        return msg["content"]

    def run(self, code: str) -> str:
        msg_id = self.submit(code)
        content = self.reply(msg_id)
        assert content["status"] == "ok", content
        return msg_id

    def streams(self, text: str) -> list[dict]:
        with self._cond:
            return [m for m in self.messages
                    if m["msg_type"] == "stream" and text in m["content"]["text"]]

    def stdout(self, msg_id: str) -> str:
        """Everything the cell *msg_id* wrote to stdout, in order."""
        with self._cond:
            return "".join(m["content"]["text"] for m in self.messages
                           if parent(m) == msg_id and m["msg_type"] == "stream"
                           and m["content"]["name"] == "stdout")

    def close(self) -> None:
        self._stop.set()
        self._pump.join()
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def parent(msg: dict) -> str | None:
    return msg["parent_header"].get("msg_id")

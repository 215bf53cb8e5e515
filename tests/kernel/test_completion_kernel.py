"""`%frost` completion answered by a real kernel's complete_request."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbfrost


@pytest.mark.timeout(120)
def test_complete_request_in_a_real_kernel():
    from helpers import Kernel

    k = Kernel()
    try:
        here = str(Path(nbfrost.__file__).parent)
        k.run("%load_ext nbfrost\nimport nbfrost, threading\n"
              "gate = threading.Event()\n"
              "d = nbfrost.get_dispatcher()\n"
              "done = d.queue(lambda: 1, name='quick'); done.wait(10)\n"
              "busy = d.queue(gate.wait, 30, name='train model')\n"
              f"assert nbfrost.__file__.startswith({here!r}), nbfrost.__file__")

        def request(code: str) -> dict:
            msg_id = k.kc.complete(code, len(code))
            reply = k.kc.get_shell_msg(timeout=30)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = k.kc.get_shell_msg(timeout=30)
            return reply["content"]

        reply = request("%frost st")
        assert reply["status"] == "ok"
        assert reply["matches"] == ["status"]
        assert [m["type"] for m in reply["metadata"]["_jupyter_types_experimental"]] == [
            "subcommand"]
        assert (reply["cursor_start"], reply["cursor_end"]) == (7, 9)

        code = "%frost status "
        reply = request(code)
        assert reply["matches"] == ["1", "0"]
        meta = reply["metadata"]["_jupyter_types_experimental"]
        assert [(m["text"], m["type"]) for m in meta] == [
            ("1", "running"), ("0", "succeeded")]
        assert all(m["start"] == len(code) == m["end"] for m in meta)

        reply = request("%frost cancel ")
        assert reply["matches"] == ["1"]
        reply = request("%frost jobs --state ")
        assert reply["matches"] == sorted(s.value for s in nbfrost.JobState)
        assert {m["type"] for m in reply["metadata"]["_jupyter_types_experimental"]} == {"state"}
        reply = request("%%frost --ret")
        assert reply["matches"] == ["--retries"]
        k.run("gate.set(); d.wait(timeout=10)")
    finally:
        k.close()


"""``%reload_ext nbfrost`` in a real kernel with a job running: one line on
the cell's stderr says what it cancelled, and ids go on (never 0 again)."""

from __future__ import annotations

import pytest


@pytest.mark.timeout(120)
def test_reload_ext_in_a_kernel_names_what_it_cancelled_and_keeps_ids_unique():
    from helpers import Kernel

    k = Kernel()
    try:
        k.run("%load_ext nbfrost\n"
              "import nbfrost, threading\n"
              "%config FrostMagics.grace = 0.2\n"
              "gate = threading.Event()\n"
              "def etl():\n"
              "    while not gate.wait(0.01):\n"
              "        pass\n"
              "d = nbfrost.get_dispatcher()\n"
              "done = d.queue(abs, -1, name='warm-up'); done.wait(10)\n"
              "t = d.queue(etl, name='etl-load')\n"
              "while not t.running():\n"
              "    gate.wait(0.01)")
        msg_id = k.run("%reload_ext nbfrost")
        with k._cond:
            err = "".join(m["content"]["text"] for m in k.messages
                          if m["parent_header"].get("msg_id") == msg_id
                          and m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
        assert err.strip().splitlines() == [
            "nbfrost: unloading cancelled 1 unfinished job (job 1 'etl-load'); "
            "new jobs get new ids"], err
        msg_id = k.run("t2 = nbfrost.get_dispatcher().queue(abs, -2, name='after'); t2.wait(10)\n"
                       "print('new id', t2.id, t.state.value)")
        assert "new id 2 cancelled" in k.stdout(msg_id)
        reply = k.reply(k.submit("%frost status 0"))
        assert reply["status"] == "error"
        assert "job 0 belonged to an earlier dispatcher" in reply["evalue"]
    finally:
        k.close()

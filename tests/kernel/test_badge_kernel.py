"""The badge in a real kernel: live redraws under its own cell, and the ticker
thread stops with the extension."""

from __future__ import annotations

import pytest
from helpers import Kernel, parent

from nbfrost.notebook import frontends


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    k.run("%load_ext nbfrost\nimport nbfrost, threading, time")
    yield k
    k.close()


def _updates(kernel: Kernel, display_id: str) -> list[dict]:
    with kernel._cond:
        return [m for m in kernel.messages if m["msg_type"] == "update_display_data"
                and m["content"]["transient"]["display_id"] == display_id]


@pytest.mark.timeout(120)
def test_badge_is_alive_in_a_real_kernel(kernel):
    cell = kernel.run(
        "%%frost -n ticking\n"
        "for i in range(12):\n"
        "    nbfrost.report(i / 12, f'step <{i}>')\n"
        "    time.sleep(0.2)\n")
    shown = kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "display_data")
    display_id = shown["content"]["transient"]["display_id"]
    final = kernel.wait_for(
        lambda m: m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
        and "succeeded" in m["content"]["data"]["text/plain"], timeout=30)
    updates = _updates(kernel, display_id)
    assert {parent(m) for m in updates} == {cell}
    running = [m["content"]["data"] for m in updates
               if " running" in m["content"]["data"]["text/plain"]]
    pcts = [int(d["text/plain"].split("% ")[0].rsplit(" ", 1)[1])
            for d in running if "%" in d["text/plain"]]
    assert len(pcts) >= 4, [d["text/plain"] for d in running]
    assert pcts == sorted(pcts) and pcts[-1] > pcts[0]
    assert any("step &lt;" in d["text/html"] for d in running)
    assert any(" · 1 s" in d["text/plain"] for d in running), "the elapsed time shows"
    # At most TICK_HZ redraws a second (plus the start and the final one).
    times = [m["header"]["date"].timestamp() for m in updates]
    for i, t0 in enumerate(times):
        in_window = [t for t in times[i:] if t - t0 < 1.0]
        assert len(in_window) <= frontends.TICK_HZ + 2, times
    text = final["content"]["data"]["text/plain"]
    assert "succeeded in 2." in text or "succeeded in 3." in text, text
    # The ticker ends with the last live badge.
    kernel.run("t0 = time.time()\n"
               "while any(t.name == 'nbfrost-badges' for t in threading.enumerate()):\n"
               "    assert time.time() - t0 < 5, 'ticker still running'\n"
               "    time.sleep(0.05)\n")


@pytest.mark.timeout(120)
def test_unload_stops_the_ticker(kernel):
    kernel.run("base = {t.name for t in threading.enumerate()}")
    kernel.run("%%frost -n long\nwhile not nbfrost.cancelled():\n    time.sleep(0.02)\n")
    kernel.run("t0 = time.time()\n"
               "while not any(t.name == 'nbfrost-badges' for t in threading.enumerate()):\n"
               "    assert time.time() - t0 < 5\n"
               "    time.sleep(0.02)\n")
    kernel.run("%unload_ext nbfrost")
    kernel.run("names = {t.name for t in threading.enumerate()}\n"
               "assert 'nbfrost-badges' not in names, names\n"
               "assert names <= base | {'nbfrost-badges'}, names - base\n"
               "%load_ext nbfrost")


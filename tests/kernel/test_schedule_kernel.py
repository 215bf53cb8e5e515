"""A ``%%frost --every`` cell in a real kernel: one badge, only the latest run's
output under the cell, pause/resume/unschedule, and nothing left running."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import Kernel, parent

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    k.run("%load_ext nbfrost\nimport nbfrost, threading, time")
    yield k
    k.close()


def output_area(kernel: Kernel, cell: str) -> list[dict]:
    """What a front end's output area for *cell* holds after every iopub
    message so far: display_data appends, stream text joins the stream
    before it, clear_output empties it (with wait=True, when the next
    output arrives), update_display_data changes nothing in number."""
    area: list[dict] = []
    pending_clear = False
    with kernel._cond:
        messages = [m for m in kernel.messages if parent(m) == cell]
    for m in messages:
        kind, content = m["msg_type"], m["content"]
        if kind == "clear_output":
            if content.get("wait"):
                pending_clear = True
            else:
                area = []
            continue
        if kind not in ("display_data", "stream", "execute_result", "error"):
            continue
        if pending_clear:
            area, pending_clear = [], False
        if kind == "stream" and area and area[-1]["type"] == "stream" \
                and area[-1]["name"] == content["name"]:
            area[-1]["text"] += content["text"]
        elif kind == "stream":
            area.append({"type": "stream", "name": content["name"], "text": content["text"]})
        else:
            area.append({"type": kind, "data": content.get("data", {})})
    return area


def value(kernel: Kernel, expr: str) -> Any:
    """The value of *expr* in the kernel, through JSON on stdout."""
    cell = kernel.run(f"print('@@' + __import__('json').dumps({expr}))")
    line = next(x for x in kernel.stdout(cell).splitlines() if x.startswith("@@"))
    return json.loads(line[2:])


@pytest.mark.timeout(180)
def test_a_scheduled_cell_shows_one_badge_and_its_latest_output(kernel):
    cell = kernel.run(
        "%%frost --every 1s -n ticker\n"
        "runs = globals().setdefault('runs', [])\n"
        "runs.append(len(runs))\n"
        "print(f'run {runs[-1]}: <output of this run>')\n")
    for n in range(4):
        kernel.wait_for(lambda m, n=n: parent(m) == cell and m["msg_type"] == "stream"
                        and f"run {n}:" in m["content"]["text"], timeout=30)
    kernel.run("%frost pause 0")
    state = value(kernel, "[nbfrost.get_dispatcher().schedule(0).state.value, "
                          "nbfrost.get_dispatcher().schedule(0).next_run]")
    assert state == ["paused", None]
    area = output_area(kernel, cell)
    badges = [o for o in area if o["type"] == "display_data" and WIDGET_VIEW in o["data"]]
    streams = [o for o in area if o["type"] == "stream"]
    assert len(badges) == 1, area
    assert "every 1 s" in badges[0]["data"]["text/html"]
    # Only the latest run's output, and it is the last run that printed.
    last = value(kernel, "runs[-1]")
    assert [s["text"] for s in streams] == [f"run {last}: <output of this run>\n"], area
    # Earlier runs keep their output with their jobs.
    outputs = value(kernel, "[t.output for t in nbfrost.get_dispatcher().schedule(0).runs()]")
    assert outputs[:2] == ["run 0: <output of this run>\n", "run 1: <output of this run>\n"]
    first = value(kernel, "nbfrost.get_dispatcher().schedule(0).runs()[0].id")
    shown = kernel.run(f"%frost output {first}")
    assert kernel.stdout(shown) == "run 0: <output of this run>\n"
    # The widget's model carries the schedule's line (what a view of the badge shows).
    model = badges[0]["data"][WIDGET_VIEW]["model_id"]
    assert model
    # Resume: runs come again; unschedule: the schedule ends.
    kernel.run("%frost resume 0")
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and f"run {last + 1}:" in m["content"]["text"], timeout=30)
    kernel.run("%frost unschedule 0")
    assert value(kernel, "nbfrost.get_dispatcher().schedule(0).state.value") == "ended"
    area = output_area(kernel, cell)
    assert len([o for o in area if o["type"] == "display_data"]) == 1, area
    statuses = value(kernel, "[t.status().to_dict()['schedule'] for t in "
                             "nbfrost.get_dispatcher().schedule(0).runs()]")
    assert set(statuses) == {0}


@pytest.mark.timeout(180)
def test_a_scheduled_process_cell_also_shows_only_its_latest_output(kernel):
    """The runs of a ``--process`` schedule run in a worker process: the
    cell is cleared and the badge shown again before each run is queued,
    so the cell holds one badge and the latest run's output."""
    cell = kernel.run(
        "%%frost --every 1s --process -n pticker\n"
        "import time\n"
        "print(f'process run at {time.monotonic_ns()}')\n")

    def runs_printed() -> int:
        return len([m for m in kernel.messages if parent(m) == cell and m["msg_type"] == "stream"
                    and "process run at" in m["content"]["text"]])

    with kernel._cond:
        assert kernel._cond.wait_for(lambda: runs_printed() >= 3, 60), "three runs printed"
    sid = value(kernel, "[s.id for s in nbfrost.get_dispatcher().schedules() "
                        "if s.name == 'pticker'][0]")
    kernel.run(f"%frost unschedule {sid}")
    kernel.run("%frost wait")
    outputs = value(kernel, f"[t.output for t in nbfrost.get_dispatcher().schedule({sid}).runs()]")
    assert len(outputs) >= 3 and len(set(outputs)) == len(outputs), outputs
    area = output_area(kernel, cell)
    badges = [o for o in area if o["type"] == "display_data" and WIDGET_VIEW in o["data"]]
    streams = [o for o in area if o["type"] == "stream"]
    assert len(badges) == 1, area
    assert "every 1 s" in badges[0]["data"]["text/html"]
    assert [s["text"] for s in streams] == [outputs[-1]], area


@pytest.mark.timeout(120)
def test_unload_ends_schedules_and_their_threads(kernel):
    kernel.run("%%frost --every 5m -n later\nNone")
    kernel.run("%unload_ext nbfrost")
    names = value(kernel, "sorted(t.name for t in threading.enumerate() "
                          "if t.name.startswith('nbfrost'))")
    assert "nbfrost-schedules" not in names, names
    kernel.run("%load_ext nbfrost")

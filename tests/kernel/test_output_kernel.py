"""What a user sees under a cell, in a real kernel.

Every iopub message is collected and sorted by its cell
(``parent_header["msg_id"]``): the badge comes first, lines are whole and
never mixed, a flood is cut at its budget with one marker, and an API job
that fails says so under its cell.  Jobs start together: they wait for an
Event that a later cell sets, so "at once" does not depend on timing.
"""

from __future__ import annotations

import re

import pytest
from helpers import Kernel, kernel_with, parent

from nbfrost import defaults, forward

pytestmark = [pytest.mark.timeout(300)]

LINE = re.compile(r"^j(\d+) (\d+) x$")


@pytest.fixture(scope="module")
def kernel():
    with kernel_with("%load_ext nbfrost\n%config FrostMagics.workers = 8\n"
                     "import threading, time, nbfrost\n"
                     "def work(n, go):\n"
                     "    go.wait(30)\n"
                     "    for i in range(200):\n"
                     "        print(f'j{n}', i, 'x')\n") as k:
        yield k


def streams_of(kernel: Kernel, cell: str, name: str = "stdout") -> list[dict]:
    with kernel._cond:
        return [m for m in kernel.messages if parent(m) == cell and m["msg_type"] == "stream"
                and m["content"]["name"] == name]


def shown_under(kernel: Kernel, cell: str) -> list[dict]:
    """What *cell* shows so far: its stream and display_data messages, in order."""
    with kernel._cond:
        return [m for m in kernel.messages if parent(m) == cell
                and m["msg_type"] in ("stream", "display_data")]


def mangled(text: str, jobs: dict[int, int]) -> list[str]:
    """Lines of *text* that are not one job's whole line; *jobs* counts each job's lines."""
    bad = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m is None:
            bad.append(line)
        else:
            jobs[int(m.group(1))] = jobs.get(int(m.group(1)), 0) + 1
    return bad


def test_api_jobs_print_whole_lines_under_their_cell(kernel):
    kernel.run("d8 = nbfrost.Dispatcher(workers=8)")
    for run in range(20):
        cell = kernel.run("go = threading.Event()\n"
                          "ts = [d8.queue(work, n, go) for n in range(8)]\n"
                          "go.set()\n"
                          "d8.wait(ts)\n")
        # The jobs ended before the cell did, so their output is complete
        # once the cell is idle: it was written before they were finished.
        counts: dict[int, int] = {}
        bad = mangled("".join(m["content"]["text"] for m in streams_of(kernel, cell)), counts)
        assert not bad, f"run {run}: mangled lines {bad[:5]}"
        assert counts == {n: 200 for n in range(8)}, f"run {run}: {counts}"
    kernel.run("d8.shutdown()")


def test_frost_cells_print_whole_lines_each_under_its_own_cell(kernel):
    kernel.run("go_cells = threading.Event()")
    cells = [kernel.run(f"%%frost -n lines{n}\ngo_cells.wait(30)\n"
                        f"for i in range(200):\n    print('j{n}', i, 'x')\n")
             for n in range(8)]
    kernel.run("go_cells.set()\n%frost wait")
    for n, cell in enumerate(cells):
        counts: dict[int, int] = {}
        bad = mangled("".join(m["content"]["text"] for m in streams_of(kernel, cell)), counts)
        assert not bad, f"cell {n}: mangled lines {bad[:5]}"
        assert counts == {n: 200}, f"cell {n}: {counts}"


def test_the_badge_comes_first_in_50_cells(kernel):
    cells = [kernel.run(f"%%frost -n first{n}\nprint('A', {n})\n") for n in range(50)]
    kernel.run("%frost wait")
    for n, cell in enumerate(cells):
        kernel.wait_for(lambda m, c=cell: parent(m) == c and m["msg_type"] == "stream")
        mine = shown_under(kernel, cell)
        kinds = [m["msg_type"] for m in mine]
        assert kinds[0] == "display_data", f"cell {n}: {kinds}"
        assert "nbfrost-badge" in mine[0]["content"]["data"]["text/html"]
        text = "".join(m["content"]["text"] for m in mine if m["msg_type"] == "stream")
        assert text == f"A {n}\n", f"cell {n}: {text!r}"


def test_notices_and_displays_come_after_the_badge(kernel):
    kernel.run("%config FrostMagics.notify = True")
    try:
        cell = kernel.run("%%frost -n shows\nfrom IPython.display import display, HTML\n"
                          "display(HTML('<i>from the job</i>'))\nprint('then a line')\n")
        kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                        and "'shows' finished in" in m["content"]["text"])
    finally:
        kernel.run("%config FrostMagics.notify = False")
    mine = shown_under(kernel, cell)
    html = [m["content"]["data"].get("text/html", "") if m["msg_type"] == "display_data"
            else m["content"]["text"] for m in mine]
    assert "nbfrost-badge" in html[0], html
    job_display = next(i for i, h in enumerate(html) if "from the job" in h)
    line = next(i for i, h in enumerate(html) if "then a line" in h)
    notice = next(i for i, h in enumerate(html) if "finished in" in h)
    assert 0 < job_display < line <= notice, html


def test_a_flood_is_cut_at_its_budget_with_one_marker(kernel):
    cell = kernel.run("%%frost -n flood\nfor i in range(200_000):\n    print(i)\n")
    kernel.run("flood = _\n%frost wait")
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and "notebook budget" in m["content"]["text"])
    kernel.run("assert flood.output.startswith('0\\n1\\n2\\n')\n"
               "assert len(flood.output) > 1_000_000  # captured up to output_cap, as before")
    msgs = streams_of(kernel, cell)
    text = "".join(m["content"]["text"] for m in msgs)
    sent = len(text.encode())
    assert sent <= defaults.FORWARD_BUDGET + 400, sent
    assert text.count("notebook budget") == 1
    marker = text.splitlines()[-1]
    # Shown when the job ended, or a second after the budget ran out if it still ran.
    assert re.search(r"job \d+ 'flood' went over its notebook budget \(256 KiB\); "
                     r"([\d,]+ characters \([\d,]+ lines\) of its output were not shown here"
                     r"|the rest of its output is not shown here \([\d,]+ characters "
                     r"\([\d,]+ lines\) so far\)); "
                     r"read all of it with %frost output \d+", marker), marker
    # Whole lines up to the marker, in order from 0.
    lines = text.splitlines()[:-1]
    assert lines == [str(i) for i in range(len(lines))]
    # Batched: few, large stream messages.
    assert len(msgs) < 60, len(msgs)
    print(f"flood: {sent} bytes in {len(msgs)} stream messages")


def test_api_job_failure_says_so_under_its_cell(kernel):
    kernel.run("dn = nbfrost.Dispatcher(workers=2)")
    cell = kernel.run("def bad(n):\n    raise ValueError(f'bad input {n}')\n"
                      "t5 = dn.queue(bad, 5, name='work-5')\n"
                      "tq = dn.queue(bad, 6, name='quiet-6', quiet=True)\n")
    kernel.run("dn.wait()")
    msg = kernel.wait_for(lambda m: m["msg_type"] == "stream"
                          and "'work-5' failed" in m["content"]["text"])
    assert parent(msg) == cell
    assert msg["content"]["name"] == "stderr"
    kernel.run("job_id = t5.id")
    text = "".join(m["content"]["text"] for m in streams_of(kernel, cell, "stderr"))
    assert re.fullmatch(r"\u2718 job (\d+) 'work-5' failed: ValueError: bad input 5 "
                        r"\u2014 %frost status \1\n", text), text
    assert "quiet-6" not in text


def test_many_failures_are_coalesced(kernel):
    cell = kernel.run("go_fail = threading.Event()\n"
                      "def fail_later(n):\n    go_fail.wait(30)\n    raise KeyError(n)\n"
                      "tf = [dn.queue(fail_later, n) for n in range(40)]\n"
                      "go_fail.set()\ndn.wait(tf)\n")
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and "more job(s) failed" in m["content"]["text"], timeout=30)
    text = "".join(m["content"]["text"] for m in streams_of(kernel, cell, "stderr"))
    lines = text.splitlines()
    singles = [x for x in lines if re.match(r"\u2718 job \d+ 'fail_later' failed: KeyError", x)]
    summaries = [x for x in lines if "more job(s) failed" in x]
    assert len(singles) <= forward.NOTICE_LIMIT and len(summaries) == 1, lines
    n = int(re.search(r"\u2718 (\d+) more", summaries[0]).group(1))
    assert len(singles) + n == 40, lines


def test_frost_cell_failure_shows_its_traceback_not_a_notice(kernel):
    cell = kernel.run("%%frost -n cellfail\nraise ValueError('cell boom')\n")
    kernel.run("%frost wait")
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and "cell boom" in m["content"]["text"])
    text = "".join(m["content"]["text"] for m in streams_of(kernel, cell, "stderr"))
    assert "Traceback" in text or "Cell In[" in text
    assert "%frost status" not in text


def test_a_retried_cell_shows_its_badge_first_too(kernel):
    # Only a failed (or cancelled) job can be retried: a succeeded one let go of its code.
    kernel.run("%%frost -n again\nprint('attempt output')\nraise ValueError('once more')\n")
    kernel.run("%frost wait\nretry_id = nbfrost.get_dispatcher().jobs(name='again')[-1].id")
    cells = [kernel.run("%frost retry $retry_id") for _ in range(5)]
    kernel.run("%frost wait")
    for cell in cells:
        kernel.wait_for(lambda m, c=cell: parent(m) == c and m["msg_type"] == "stream")
        kinds = [m["msg_type"] for m in shown_under(kernel, cell)]
        assert kinds[0] == "display_data", kinds


def test_an_async_cell_shows_its_badge_first(kernel):
    cells = [kernel.run(f"%%frost -n async{n}\nimport asyncio\nawait asyncio.sleep(0)\n"
                        f"print('async', {n})\n") for n in range(10)]
    kernel.run("%frost wait")
    for n, cell in enumerate(cells):
        kernel.wait_for(lambda m, c=cell: parent(m) == c and m["msg_type"] == "stream")
        mine = shown_under(kernel, cell)
        assert mine[0]["msg_type"] == "display_data", [m["msg_type"] for m in mine]
        assert "".join(m["content"]["text"] for m in mine[1:]) == f"async {n}\n"

def test_threads_return_to_baseline_after_unload_and_reload(kernel):
    kernel.run("dn.shutdown()")
    check = ("left = [t.name for t in threading.enumerate() if t.name.startswith('nbfrost')]\n"
             "assert not left, left")
    kernel.run("%unload_ext nbfrost")
    kernel.run(check)
    kernel.run("%load_ext nbfrost")
    kernel.run("%%frost\nprint('again')\n")
    kernel.run("%frost wait\n%reload_ext nbfrost")
    kernel.run("%%frost\nprint('and again')\n")
    kernel.run("%frost wait\n%unload_ext nbfrost")
    kernel.run(check)


"""The live badge: what it shows, how often it is redrawn, and its one ticker thread.

The unit tests draw into a recording badge (no kernel); the kernel tests
read the real ``update_display_data`` messages of a ``%%frost`` badge.
"""

from __future__ import annotations

import threading
import time

from helpers import eventually

import nbfrost
from nbfrost.notebook import frontends
from nbfrost.notebook.badge import Badge, badge_bundle


class Recording(Badge):
    __slots__ = ("drawn",)

    def __init__(self, job, clock) -> None:
        super().__init__(job, clock)
        self.drawn: list[dict] = []

    def _draw(self, bundle: dict[str, str]) -> None:
        self.drawn.append(bundle)


class FakeShell:
    """Just the event registry a `Board` uses."""

    def __init__(self) -> None:
        from IPython.core.events import EventManager, available_events

        self.events = EventManager(self, available_events)  # type: ignore[arg-type]  # a fake shell


def badge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nbfrost-badges"]


# ------------------------------------------------------------------ drawing
def test_running_badge_shows_elapsed_progress_and_escaped_message(dispatcher):
    gate, reported = threading.Event(), threading.Event()

    def work():
        nbfrost.report(0.42, "<b>epoch</b> 3 & more")
        reported.set()
        gate.wait(10)

    t = dispatcher.queue(work, name="<script>alert(1)</script>")
    assert reported.wait(10)
    bundle = badge_bundle(t._job, dispatcher.registry.clock())
    html, plain = bundle["text/html"], bundle["text/plain"]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;epoch&lt;/b&gt; 3 &amp; more" in html and "<b>epoch" not in html
    assert "42%" in html and "width:42%" in html
    assert plain.startswith(f"job {t.id} '<script>alert(1)</script>' running · ")
    assert plain.endswith(" s · 42% · <b>epoch</b> 3 & more"), plain
    gate.set()
    t.wait(10)
    done = badge_bundle(t._job, dispatcher.registry.clock())
    assert "succeeded" in done["text/plain"] and " in " in done["text/plain"]
    assert "42%" not in done["text/html"]


def test_failed_badge_shows_the_error_line_escaped(dispatcher):
    def fail():
        raise ValueError("bad <input>\nsecond line")

    t = dispatcher.queue(fail, name="f")
    t.wait(10)
    html = badge_bundle(t._job, dispatcher.registry.clock())["text/html"]
    assert "failed" in html and "ValueError: bad &lt;input&gt;" in html
    assert "second line" not in html


def test_a_badge_is_redrawn_only_when_something_visible_changed(dispatcher):
    gate, step = threading.Event(), threading.Event()

    def work():
        nbfrost.report(0.1, "a")
        step.wait(10)
        nbfrost.report(0.5, "a")
        gate.wait(10)

    t = dispatcher.queue(work)
    eventually(lambda: t._job.progress == 0.1)
    badge = Recording(t._job, dispatcher.registry.clock)
    assert badge.update() and not badge.update() and not badge.update()
    step.set()
    eventually(lambda: t._job.progress == 0.5)
    assert badge.update() and "50%" in badge.drawn[-1]["text/html"]
    gate.set()
    t.wait(10)
    assert badge.update(final=True) and badge.closed
    assert not badge.update(), "nothing is drawn after the final state"
    assert len(badge.drawn) == 3


# ------------------------------------------------------------------ ticker
class Item:
    def __init__(self) -> None:
        self.ticks = 0
        self.finished = False

    def tick(self) -> None:
        self.ticks += 1


def test_one_ticker_thread_for_all_badges_started_and_stopped_on_demand(thread_baseline):
    board = frontends.Board(FakeShell())
    assert not badge_threads()
    items = [Item() for _ in range(5)]
    for item in items:
        board.track(item)
    assert len(badge_threads()) == 1 and board.ticking
    eventually(lambda: all(i.ticks >= 2 for i in items))
    for item in items:
        item.finished = True
    eventually(lambda: not badge_threads(), what="the ticker ends with the last live badge")
    # A new badge starts it again; close() stops and joins it.
    item = Item()
    board.track(item)
    assert len(badge_threads()) == 1
    board.close()
    assert not badge_threads() and not board.ticking
    board.close()  # twice is fine


def test_ticker_rate_is_bounded():
    board = frontends.Board(FakeShell())
    item = Item()
    board.track(item)
    time.sleep(1.05)
    board.close()
    assert 2 <= item.ticks <= frontends.TICK_HZ + 1


# ------------------------------------------------------------- real kernel

"""The live dashboard: an ipywidgets view of a dispatcher's registry.

``nbfrost.Dashboard(d)`` is a `ipywidgets.VBox` made only of standard
widgets (no custom JavaScript, no build step), so it works wherever
ipywidgets does: JupyterLab, Notebook 7, VS Code, Voila.

How it stays cheap:

* A refresh reads ``Dispatcher.stats()`` (O(1)) and
  ``Dispatcher.to_frame(newest=...)`` (O(page)), never the whole registry.
* One background thread per dispatcher (`_Hub`) serves every dashboard on
  it.  It re-renders a dashboard only when ``registry.version`` moved, at
  most once per ``refresh`` seconds, and views that show the same page share
  one rendering.  It only assigns widget traits: ``with output:`` from a
  thread would capture the main thread's prints.
* The thread ends when the last dashboard is closed or the dispatcher shuts
  down.

Every user string (names, tags, messages, errors, tracebacks, output,
worker names) reaches the browser HTML-escaped: the table goes through
``DataFrame.to_html(escape=True)``, everything else through `html.escape`.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import numbers
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    import ipywidgets as widgets
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "nbfrost.Dashboard needs ipywidgets; install it with "
        "`pip install 'ipywidgets>=8'` (or `conda install -c conda-forge ipywidgets`), "
        "then restart the kernel") from _exc

from .errors import JobNotFound
from .job import STATE_COLOURS, TERMINAL, JobState

if TYPE_CHECKING:
    import pandas as pd

    from .dispatcher import Dispatcher
    from .tracker import Tracker

__all__ = ["Dashboard"]

log = logging.getLogger("nbfrost")

#: The state filter's choices: label -> states (None: every state).
STATE_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "active": ("queued", "running"),
    "queued": ("queued",),
    "running": ("running",),
    "succeeded": ("succeeded",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}

#: Table columns, in order.  The per-row CSS below addresses cells by their
#: position, so keep these indices in step with `_TABLE_COLUMNS`.
_TABLE_COLUMNS = ("id", "name", "tags", "state", "progress", "queued", "started",
                  "finished", "duration", "attempts", "error")
_STR_FORMATTERS = dict.fromkeys(_TABLE_COLUMNS, str)
_COL_STATE = _TABLE_COLUMNS.index("state") + 1     # CSS nth-child is 1-based
_COL_PROGRESS = _TABLE_COLUMNS.index("progress") + 1

_OUTPUT_TAIL = 4000       # characters of a job's output shown in the details
_BANNER_SECONDS = 4.0     # how long a finish notice stays up
_MIN_REFRESH = 0.05       # seconds; the thread never polls faster than this
_ids = itertools.count(1)
_NAT = -(2 ** 63)         # pandas' integer for NaT in ``.asi8``

_CSS = """
.nbf{font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",sans-serif);
 font-size:12px;line-height:1.45;color:var(--jp-ui-font-color1,#1f2937)}
.nbf-head{display:flex;flex-wrap:wrap;align-items:center;gap:6px 14px;padding:2px 0 4px}
.nbf-title{font-weight:700;font-size:13px;letter-spacing:.2px}
.nbf-title span{color:var(--jp-ui-font-color2,#6b7280);font-weight:400}
.nbf-chips{display:flex;gap:6px;flex-wrap:wrap}
.nbf-chip{display:inline-flex;align-items:center;gap:5px;padding:1px 9px 1px 7px;border-radius:11px;
 background:var(--jp-layout-color2,#f3f4f6);border:1px solid var(--jp-border-color2,#e5e7eb);
 white-space:nowrap}
.nbf-chip b{font-size:13px;font-variant-numeric:tabular-nums}
.nbf-dot{width:8px;height:8px;border-radius:50%;display:inline-block}
.nbf-kpi{color:var(--jp-ui-font-color2,#4b5563);white-space:nowrap}
.nbf-kpi b{color:var(--jp-ui-font-color1,#111827);font-variant-numeric:tabular-nums}
.nbf-meter{display:inline-block;width:56px;height:7px;border-radius:4px;vertical-align:middle;
 background:var(--jp-layout-color3,#e5e7eb);overflow:hidden;margin-left:4px}
.nbf-meter i{display:block;height:100%;background:#2563eb}
.nbf-live{margin-left:auto;color:var(--jp-ui-font-color2,#6b7280);white-space:nowrap}
.nbf-live.on::before{content:"";display:inline-block;width:7px;height:7px;border-radius:50%;
 background:#16a34a;margin-right:5px;vertical-align:middle}
.nbf-live.off::before{content:"";display:inline-block;width:7px;height:7px;border-radius:50%;
 background:#9ca3af;margin-right:5px;vertical-align:middle}
.nbf-banner{padding:3px 10px;border-radius:4px;border-left:3px solid #2563eb;
 background:var(--jp-layout-color2,#eff6ff);animation:nbf-flash 1.6s ease-out}
.nbf-banner.failed{border-left-color:#dc2626}.nbf-banner.cancelled{border-left-color:#d97706}
.nbf-banner.succeeded{border-left-color:#16a34a}
.nbf-banner .more{color:var(--jp-ui-font-color2,#6b7280)}
@keyframes nbf-flash{0%{background:#fde68a}100%{background:var(--jp-layout-color2,#eff6ff)}}
.nbf-scroll{max-height:430px;overflow:auto;border:1px solid var(--jp-border-color2,#e5e7eb);border-radius:4px}
table.nbf-table{border-collapse:collapse;width:100%;font-size:12px;font-variant-numeric:tabular-nums;border:0}
table.nbf-table th{position:sticky;top:0;z-index:1;text-align:left;font-weight:600;padding:4px 8px;
 background:var(--jp-layout-color2,#f9fafb);border:0;border-bottom:1px solid var(--jp-border-color1,#d1d5db);
 color:var(--jp-ui-font-color2,#374151)}
table.nbf-table td{padding:2px 8px;border:0;border-bottom:1px solid var(--jp-border-color3,#f1f1f1);
 white-space:nowrap;max-width:26em;overflow:hidden;text-overflow:ellipsis;text-align:left}
table.nbf-table tbody tr:hover td{background:var(--jp-layout-color2,#f5f7fa)}
table.nbf-table td:nth-child(1){color:var(--jp-ui-font-color2,#6b7280)}
table.nbf-table td:nth-child(2){font-weight:600}
table.nbf-table td:nth-child(4)::before{content:"";display:inline-block;width:7px;height:7px;
 border-radius:50%;background:currentColor;margin-right:5px;vertical-align:middle}
table.nbf-table td:nth-child(5){min-width:11em;max-width:18em}
table.nbf-table td:nth-child(11){color:#b91c1c;max-width:30em}
.nbf-empty{padding:14px;text-align:center;color:var(--jp-ui-font-color2,#6b7280)}
.nbf-details{display:grid;grid-template-columns:minmax(300px,1.6fr) minmax(240px,1fr);gap:10px;margin-top:4px}
.nbf-details h4{margin:2px 0 3px;font-size:11px;text-transform:uppercase;letter-spacing:.5px;
 color:var(--jp-ui-font-color2,#6b7280)}
.nbf-details pre{margin:0 0 6px;padding:6px 8px;max-height:260px;overflow:auto;font-size:11px;
 background:var(--jp-layout-color2,#f6f8fa);border-radius:4px;white-space:pre-wrap;word-break:break-word;
 font-family:var(--jp-code-font-family,ui-monospace,Menlo,Consolas,monospace)}
.nbf-details pre.err{background:#fef2f2;color:#991b1b}
.nbf-note{color:var(--jp-ui-font-color2,#6b7280)}
.nbf-msg.err{color:#b91c1c}.nbf-msg.ok{color:#15803d}
.nbf-svg text{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:11px;
 fill:var(--jp-ui-font-color1,#1f2937)}
.nbf-svg .axis{fill:var(--jp-ui-font-color2,#6b7280);font-size:10px}
.nbf-svg .grid{stroke:var(--jp-border-color2,#e5e7eb);stroke-width:1}
.nbf-svg .lane{fill:var(--jp-layout-color2,#f7f7f8)}
.nbf-svg .bar text{fill:#fff;font-size:10px;pointer-events:none}
.nbf-legend{display:flex;gap:12px;flex-wrap:wrap;margin:2px 0 4px;color:var(--jp-ui-font-color2,#4b5563)}
"""
_STYLE = f"<style>{_CSS}</style>"


def _esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: never started
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} m"


def _fmt_rate(per_second: float) -> str:
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    if per_second >= 1:
        return f"{per_second:.1f}/s"
    return f"{per_second * 60:.0f}/min"


def _clock_strings(epoch_ns: Any) -> list[str]:
    """Local ``HH:MM:SS`` for an int64 array of epoch nanoseconds (NaT → "")."""
    out = []
    localtime = time.localtime
    strftime = time.strftime
    for ns in epoch_ns.tolist():
        out.append("" if ns == _NAT else strftime("%H:%M:%S", localtime(ns / 1e9)))
    return out


def _natural_key(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def parse_filter(text: str) -> tuple[str | None, str | None]:
    """Split the text filter into ``(name_glob, tag)`` for `Dispatcher.to_frame`.

    ``tag:NAME`` picks jobs carrying that tag; any other words match the job
    name as a substring, or as a glob when they contain ``*?[``.  Matching is
    case-sensitive, like `Dispatcher.jobs`.
    """
    tag = None
    words = []
    for word in text.split():
        if word.startswith("tag:") and len(word) > 4:
            tag = word[4:]
        else:
            words.append(word)
    name = " ".join(words) or None
    if name is not None and not any(c in name for c in "*?["):
        name = f"*{name}*"
    return name, tag


# --------------------------------------------------------------------- table
class _Page:
    """One rendered page of the job table, shareable between dashboards."""

    __slots__ = ("html", "ids", "labels", "states", "progress", "start", "shown", "total", "more")

    def __init__(self, html_: str, ids: tuple[int, ...] = (), labels: tuple[str, ...] = (),
                 states: list[str] | None = None, progress: list[float] | None = None,
                 start: int = 0, shown: int = 0, total: int | None = None,
                 more: bool = False) -> None:
        self.html = html_
        self.ids = ids
        self.labels = labels
        self.states = states or []
        self.progress = progress or []
        self.start = start
        self.shown = shown
        self.total = total
        self.more = more


def _display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame from `Dispatcher.to_frame` as display strings, one column
    per `_TABLE_COLUMNS` entry.  User strings stay raw: ``to_html`` escapes."""
    import pandas as pd

    states = [str(s) for s in frame["state"].tolist()]
    progress = frame["progress"].tolist()
    messages = frame["message"].tolist()
    prog_text = []
    for state, frac, msg in zip(states, progress, messages):
        if state != "running":
            prog_text.append("")
            continue
        bits = []
        if frac == frac:  # not NaN
            bits.append(f"{frac:.0%}")
        if msg:
            bits.append(str(msg))
        prog_text.append(" · ".join(bits) if bits else "running…")
    errors = []
    for etype, err in zip(frame["error_type"].tolist(), frame["error"].tolist()):
        if err is None or err != err:
            errors.append("")
            continue
        first = str(err).splitlines()[0] if str(err) else ""
        errors.append(f"{etype}: {first}" if etype and etype not in first else first)
    data = {
        "id": [str(i) for i in frame.index.tolist()],
        "name": frame["name"].tolist(),
        "tags": [", ".join(t) for t in frame["tags"].tolist()],
        "state": states,
        "progress": prog_text,
        "queued": _clock_strings(frame["queued_at"].array.asi8),
        "started": _clock_strings(frame["started_at"].array.asi8),
        "finished": _clock_strings(frame["finished_at"].array.asi8),
        "duration": [_fmt_duration(x) for x in frame["duration"].tolist()],
        "attempts": [str(a) for a in frame["attempts"].tolist()],
        "error": errors,
    }
    return pd.DataFrame(data, columns=list(_TABLE_COLUMNS))


def _row_css(scope: str, states: list[str], progress: list[float]) -> str:
    """Per-row CSS for the state colour and the progress bar of the table
    inside the element with class *scope*.

    ``to_html(escape=True)`` cannot put markup or classes in cells, so the
    colours are addressed by row position instead.  Only enum values and
    numbers go into this CSS, never a user string.
    """
    by_state: dict[str, list[str]] = {}
    bars = []
    for row, (state, frac) in enumerate(zip(states, progress), start=1):
        by_state.setdefault(state, []).append(
            f".{scope} tbody tr:nth-child({row}) td:nth-child({_COL_STATE})")
        if state == "running" and frac == frac:
            pct = f"{max(0.0, min(1.0, frac)) * 100:.1f}%"
            bars.append(
                f".{scope} tbody tr:nth-child({row}) td:nth-child({_COL_PROGRESS})"
                f"{{background:linear-gradient(90deg,rgba(37,99,235,.30) {pct},"
                f"rgba(37,99,235,.05) {pct})}}")
    rules = []
    for state, selectors in by_state.items():
        colour = STATE_COLOURS[JobState(state)]
        rules.append(f"{','.join(selectors)}{{color:{colour};font-weight:600}}")
    return "<style>" + "".join(rules) + "".join(bars) + "</style>"


def render_page(dispatcher: Dispatcher, states: tuple[str, ...] | None, text: str,
                page: int, page_size: int, counts: dict[str, int]) -> _Page:
    """Query and render one page of the table (newest first).

    Costs O((page + 1) * page_size): the query asks ``to_frame`` for the
    newest ``(page + 1) * page_size + 1`` matching jobs and shows the last
    *page_size* of them; the extra one says whether an older page exists.
    """
    name, tag = parse_filter(text)
    total = None
    if name is None and tag is None:
        total = sum(counts.values()) if states is None else sum(counts[s] for s in states)
    start = page * page_size
    want = start + page_size + 1
    if total is not None:
        # Stop the newest-first scan as soon as every match was seen.
        want = min(want, total)
    frame = dispatcher.to_frame(state=states, name=name, tag=tag, newest=want) if want else None
    if frame is None or len(frame) <= start:
        what = "jobs" if states is None else " or ".join(states) + " jobs"
        where = f" matching {_esc(text)!s}" if text.strip() else ""
        more_hint = " on this page" if page else ""
        body = f'<div class="nbf-empty">No {_esc(what)}{where}{more_hint}.</div>'
        return _Page(body, start=start, total=total)
    more = len(frame) > start + page_size or (total is not None and total > start + page_size)
    frame = frame.iloc[start:start + page_size]
    shown = _display_frame(frame)
    # Every display value is already a str: formatting each with str skips
    # pandas' generic cell formatter (a third of to_html's time) and gives
    # the same HTML.  Escaping still happens (escape=True).
    table = shown.to_html(escape=True, index=False, border=0, justify="left",
                          classes="nbf-table", na_rep="", formatters=_STR_FORMATTERS)
    ids = tuple(frame.index.tolist())
    labels = tuple(f"#{i} · {n}" for i, n in zip(ids, shown["name"].tolist()))
    return _Page(f'<div class="nbf-scroll">{table}</div>', ids, labels, shown["state"].tolist(),
                 frame["progress"].tolist(), start, len(frame), total, more)


# ------------------------------------------------------------------ timeline
def render_timeline(frame: pd.DataFrame, now: float, workers: int, width: int = 960) -> str:
    """A Gantt chart (SVG) of the jobs in *frame*: one lane per worker, one
    bar per started job, coloured by state.  User strings go into ``<title>``
    tooltips and labels escaped.  *now* (epoch seconds) ends running bars."""
    started_ns = frame["started_at"].array.asi8
    finished_ns = frame["finished_at"].array.asi8
    rows = []
    for jid, name, state, worker, s_ns, f_ns, dur in zip(
            frame.index.tolist(), frame["name"].tolist(), frame["state"].tolist(),
            frame["worker"].tolist(), started_ns.tolist(), finished_ns.tolist(),
            frame["duration"].tolist()):
        if s_ns == _NAT:
            continue  # still queued (or cancelled before it started): no worker yet
        start = s_ns / 1e9
        end = now if f_ns == _NAT else f_ns / 1e9
        worker = worker if isinstance(worker, str) else "?"
        rows.append((jid, name, str(state), worker, start, max(end, start), dur))
    waiting = len(frame) - len(rows)
    if not rows:
        return ('<div class="nbf"><div class="nbf-empty">No job has started yet; '
                'the timeline shows the most recent jobs once they run.</div></div>')
    t0 = min(r[4] for r in rows)
    t1 = max(max(r[5] for r in rows), t0 + 1e-3)
    span = t1 - t0
    lanes = sorted({r[3] for r in rows}, key=_natural_key)
    lane_of = {w: i for i, w in enumerate(lanes)}
    label_w, top, lane_h, pad_r = 128, 22, 22, 12
    plot_w = width - label_w - pad_r
    height = top + lane_h * len(lanes) + 6
    busy = dict.fromkeys(lanes, 0.0)
    parts = [f'<svg class="nbf-svg" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" role="img" '
             f'aria-label="timeline of the {len(rows)} most recent started jobs">']
    # Lanes and the time grid first, bars on top.
    for i in range(len(lanes)):
        y = top + i * lane_h
        if i % 2 == 0:
            parts.append(f'<rect class="lane" x="{label_w}" y="{y}" width="{plot_w}" height="{lane_h}"/>')
    step = _nice_step(span / 6)
    k = 0
    while k * step <= span * 1.0001:
        x = label_w + k * step / span * plot_w
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}"/>')
        label = "0" if k == 0 else _fmt_tick(k * step)
        anchor = "start" if k == 0 else ("end" if x > label_w + plot_w - 24 else "middle")
        parts.append(f'<text class="axis" x="{x:.1f}" y="{top - 8}" text-anchor="{anchor}">+{label}</text>')
        k += 1
    for jid, name, state, worker, start, end, _dur in rows:
        busy[worker] += end - start
        y = top + lane_of[worker] * lane_h + 3
        x = label_w + (start - t0) / span * plot_w
        w = max(1.5, (end - start) / span * plot_w)
        colour = STATE_COLOURS[JobState(state)]
        tip = f"#{jid} {name} · {state} · {_fmt_duration(end - start)} on {worker}"
        opacity = ' fill-opacity="0.75"' if state == "running" else ""
        bar = [f'<g class="bar"><title>{_esc(tip)}</title>'
               f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 6}" rx="2" '
               f'fill="{colour}"{opacity}/>']
        fits = int((w - 6) // 6.2)
        if fits >= 3:
            text = f"#{jid} {name}"
            if len(text) > fits:
                text = text[: max(1, fits - 1)] + "…"
            bar.append(f'<text x="{x + 3:.1f}" y="{y + lane_h - 10}">{_esc(text)}</text>')
        bar.append("</g>")
        parts.append("".join(bar))
    for i, w in enumerate(lanes):
        y = top + i * lane_h + lane_h / 2 + 4
        share = busy[w] / span
        name = w if len(w) <= 16 else "…" + w[-15:]
        parts.append(f'<text x="4" y="{y:.1f}">{_esc(name)}<tspan class="axis" dx="6">'
                     f'{share:.0%}</tspan><title>{_esc(w)}: busy {share:.0%} of the window</title></text>')
    parts.append("</svg>")
    capacity = span * max(workers, len(lanes))
    pool = sum(busy.values()) / capacity if capacity else 0.0
    start_clock = time.strftime("%H:%M:%S", time.localtime(t0))
    legend = "".join(
        f'<span><span class="nbf-dot" style="background:{STATE_COLOURS[s]}"></span> {s.value}</span>'
        for s in JobState if s is not JobState.QUEUED)
    caption = (f'<b>{len(rows)}</b> most recent started jobs since {start_clock} '
               f'({_fmt_duration(span)}) · pool busy <b>{pool:.0%}</b> of '
               f'{max(workers, len(lanes))} worker-lanes')
    if waiting:
        caption += f" · {waiting} not started (not drawn)"
    return (f'<div class="nbf"><div class="nbf-legend"><span>{caption}</span>{legend}</div>'
            + "".join(parts) + "</div>")


def _nice_step(raw: float) -> float:
    """The round step (1, 2 or 5 times a power of ten, or minutes) nearest
    above *raw* seconds, for the timeline's grid."""
    if raw >= 60:
        for minutes in (1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440):
            if minutes * 60 >= raw:
                return minutes * 60.0
        return raw
    power = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def _fmt_tick(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:g}\u202fmin"
    return f"{seconds:g}\u202fs"


# ----------------------------------------------------------------------- hub
_hubs_lock = threading.Lock()  # guards _hubs and every hub's dashboards/thread
_hubs: dict[int, _Hub] = {}   # id(dispatcher) -> its hub, while it has dashboards


class _Hub:
    """The one refresh thread of a dispatcher, shared by its dashboards.

    It also owns the finish notices.  A `Dispatcher.on_finish` hook is
    armed for the *next* finish only: it records that job's tracker and
    unsubscribes itself, and each refresh pass arms it again.  So a busy
    pool pays for one callback per pass, not one per job; the notice says
    how many more finished, from ``stats()["finished"]``.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.dashboards: list[Dashboard] = []
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.caught: deque[tuple[int, Tracker]] = deque(maxlen=16)
        self._seq = itertools.count(1)
        self._arm_lock = threading.Lock()  # guards _unsubscribe and _left
        self._unsubscribe: Callable[[], None] | None = None
        self._left = False
        self.ticks = 0
        self.tick_cond = threading.Condition()
        self.arm()

    def arm(self) -> None:
        """Catch the next job that finishes (if not already waiting for one)."""
        with self._arm_lock:
            if self._unsubscribe is None and not self._left and not self.dispatcher.closed:
                self._unsubscribe = self.dispatcher.on_finish(self._on_finish)

    def disarm(self) -> None:
        with self._arm_lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _on_finish(self, tracker: Tracker) -> None:
        # Runs in the worker that finished the job.  deque.append and
        # next(count) are atomic under the GIL; two workers racing here
        # both append, which is harmless.
        self.caught.append((next(self._seq), tracker))
        self.disarm()

    @classmethod
    def join(cls, dash: Dashboard) -> _Hub:
        with _hubs_lock:
            hub = _hubs.get(id(dash.dispatcher))
            if hub is None:
                hub = _hubs[id(dash.dispatcher)] = cls(dash.dispatcher)
            hub.dashboards.append(dash)
            hub._ensure_thread()
        return hub

    def _ensure_thread(self) -> None:
        """Start the thread if a live dashboard needs it.  Caller holds _hubs_lock."""
        if self.thread is not None or self.dispatcher.closed:
            return
        if not any(d._refresh is not None for d in self.dashboards):
            return
        self.wake.clear()
        self.thread = threading.Thread(target=self._run, name="nbfrost-dashboard", daemon=True)
        self.thread.start()

    def leave(self, dash: Dashboard) -> None:
        thread = None
        last = False
        with _hubs_lock:
            if dash in self.dashboards:
                self.dashboards.remove(dash)
            if not any(d._refresh is not None for d in self.dashboards):
                thread = self.thread
                self.wake.set()
            last = not self.dashboards
            if last and _hubs.get(id(self.dispatcher)) is self:
                del _hubs[id(self.dispatcher)]
        if last:
            with self._arm_lock:
                self._left = True
            self.disarm()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def _live(self) -> list[Dashboard] | None:
        """The dashboards to refresh now, or None if the thread should end."""
        with _hubs_lock:
            live = [d for d in self.dashboards if d._refresh is not None]
            if not live or self.dispatcher.closed:
                self.thread = None
                return None
            return live

    def _run(self) -> None:
        try:
            while True:
                live = self._live()
                if live is None:
                    break
                interval = max(_MIN_REFRESH, min(d._refresh for d in live))  # type: ignore[type-var]
                if self.wake.wait(interval):
                    self.wake.clear()
                try:
                    self.tick(live)
                except Exception:  # e.g. stats() failed: log it, keep refreshing
                    log.exception("nbfrost: dashboard refresh pass failed")
        finally:
            # One last pass so a dispatcher that shut down shows its final state.
            if self.dispatcher.closed:
                with _hubs_lock:
                    remaining = list(self.dashboards)
                try:
                    self.tick(remaining, force=True)
                except Exception:
                    log.exception("nbfrost: last dashboard refresh pass failed")

    def tick(self, dashboards: list[Dashboard], force: bool = False) -> None:
        """Refresh each dashboard whose registry changed (or all, with *force*)."""
        shared: dict[Any, Any] = {"stats": self.dispatcher.stats()}
        for dash in dashboards:
            try:
                dash._tick(shared, force)
            except Exception:  # a broken render must not kill the thread
                log.exception("nbfrost: dashboard refresh failed")
        self.arm()
        with self.tick_cond:
            self.ticks += 1
            self.tick_cond.notify_all()

    def wait_ticks(self, n: int, timeout: float = 10.0) -> bool:
        """Block until the thread made *n* more passes (tests use this)."""
        with self.tick_cond:
            target = self.ticks + n
            return self.tick_cond.wait_for(lambda: self.ticks >= target, timeout)


# ----------------------------------------------------------------- dashboard
def _button(description: str, icon: str, tooltip: str, style: str = "") -> widgets.Button:
    return widgets.Button(description=description, icon=icon, tooltip=tooltip, button_style=style,
                          layout=widgets.Layout(width="auto", height="28px"))


class Dashboard(widgets.VBox):
    """A live view of a dispatcher: counters, a filterable job table,
    details, actions and a timeline.

    Args:
        dispatcher: the `Dispatcher` to show; ``None`` uses the one the
            ``%frost`` magics use (`nbfrost.get_dispatcher()`).
        refresh: at most how often (seconds) the view re-renders while the
            registry changes; ``None`` turns live refresh off (call
            `refresh_now`).
        page_size: rows per page of the job table (1–1000).
        timeline_jobs: how many recent jobs the Timeline tab draws.

    Raises:
        TypeError, ValueError: a bad argument (nothing is started).

    Display it as the last expression of a cell.  ``close()`` stops its
    refresh; the shared refresh thread ends with the last open dashboard of
    its dispatcher, or when the dispatcher shuts down.
    """

    def __init__(self, dispatcher: Dispatcher | None = None, refresh: float | None = 0.5,
                 page_size: int = 50, *, timeline_jobs: int = 200) -> None:
        from .dispatcher import Dispatcher

        if refresh is not None:
            if isinstance(refresh, bool) or not isinstance(refresh, numbers.Real):
                raise TypeError(f"refresh must be a number of seconds or None, got "
                                f"{type(refresh).__name__} {refresh!r}")
            if not refresh > 0:
                raise ValueError(f"refresh must be > 0 seconds (or None to refresh only on "
                                 f"refresh_now()), got {refresh!r}")
            refresh = max(float(refresh), _MIN_REFRESH)
        for label, value, hi in (("page_size", page_size, 1000), ("timeline_jobs", timeline_jobs, 5000)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{label} must be an int, got {type(value).__name__} {value!r}")
            if not 1 <= value <= hi:
                raise ValueError(f"{label} must be between 1 and {hi}, got {value!r}")
        if dispatcher is None:
            from .magics import get_dispatcher

            dispatcher = get_dispatcher()
        elif not isinstance(dispatcher, Dispatcher):
            raise TypeError(f"dispatcher must be an nbfrost.Dispatcher or None, got "
                            f"{type(dispatcher).__name__} {dispatcher!r:.60}")

        self.dispatcher = dispatcher
        self.page_size = int(page_size)
        self.timeline_jobs = int(timeline_jobs)
        self._refresh = refresh
        self._uid = f"nbf{next(_ids)}"
        # Guards rendering and actions: the refresh thread and the kernel's
        # main thread (button clicks) both render.
        self._lock = threading.RLock()
        self._page = 0
        self._version = -1           # registry.version at the last render
        self._last_render = 0.0      # monotonic time of the last render
        self._banner_seq = 0         # newest caught finish already shown
        self._finished_seen = 0      # stats()["finished"] total at the last pass
        self._banner_until = 0.0
        self._details_key: Any = None
        self._timeline_version = -1
        self._ids: tuple[int, ...] = ()
        self._labels: tuple[str, ...] = ()
        self._quiet = False          # True while we set widget values ourselves
        self._closed = False
        #: How many times the view was rendered (for tests and curiosity).
        self.renders = 0

        self._build_widgets()
        super().__init__(children=self._children, layout=widgets.Layout(width="100%"))
        self.add_class("nbf-dashboard")
        self._hub = _Hub.join(self)
        # The finish notices start from now, not from the ring's history.
        self._banner_seq = max((s for s, _ in tuple(self._hub.caught)), default=0)
        self._finished_seen = sum(dispatcher.stats()["finished"].values())
        self.refresh_now()

    # ------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        W = widgets
        self.header = W.HTML(layout=W.Layout(width="100%"))
        self.banner = W.HTML(layout=W.Layout(width="100%", min_height="0"))
        self.state_filter = W.ToggleButtons(
            options=list(STATE_FILTERS), value="all", tooltips=[
                "every job", "queued or running", "waiting for a worker", "running now",
                "finished without error", "raised (after any retries) or timed out",
                "cancelled before or while running"],
            style={"button_width": "auto"}, layout=W.Layout(width="auto"))
        self.state_filter.add_class("nbf-state-filter")
        self.text_filter = W.Text(placeholder="filter: name, glob or tag:TAG",
                                  continuous_update=True, layout=W.Layout(width="220px"))
        self.text_filter.add_class("nbf-text-filter")
        self.prev_button = _button("", "chevron-left", "newer jobs")
        self.next_button = _button("", "chevron-right", "older jobs")
        self.page_label = W.HTML(layout=W.Layout(width="auto", margin="0 4px"))
        self.clear_button = _button("Clear finished", "trash", "remove every finished job from the registry")
        self.pause_button = W.ToggleButton(value=False, description="Pause", icon="pause",
                                           tooltip="pause / resume the live refresh",
                                           layout=W.Layout(width="auto", height="28px"))
        self.pause_button.add_class("nbf-pause")
        toolbar = W.HBox([self.state_filter, self.text_filter, self.prev_button, self.page_label,
                          self.next_button, W.HBox(layout=W.Layout(flex="1")),
                          self.clear_button, self.pause_button],
                         layout=W.Layout(align_items="center", flex_flow="row wrap", width="100%",
                                         margin="2px 0"))
        self.table = W.HTML(layout=W.Layout(width="100%"))
        self.table.add_class("nbf-table-widget")
        self.job_select = W.Dropdown(options=[("— choose a job —", None)], value=None,
                                     description="Job", layout=W.Layout(width="260px"),
                                     style={"description_width": "32px"})
        self.job_select.add_class("nbf-job-select")
        self.cancel_button = _button("Cancel", "stop", "cancel the chosen job", "warning")
        self.cancel_button.add_class("nbf-cancel")
        self.interrupt_box = W.Checkbox(value=False, description="interrupt", indent=False,
                                        tooltip="raise JobCancelled inside the running job now",
                                        layout=W.Layout(width="90px"))
        self.retry_button = _button("Retry", "redo", "queue the chosen finished job again")
        self.retry_button.add_class("nbf-retry")
        self.message = W.HTML(layout=W.Layout(width="auto", margin="0 0 0 8px"))
        actions = W.HBox([self.job_select, self.cancel_button, self.interrupt_box,
                          self.retry_button, self.message],
                         layout=W.Layout(align_items="center", flex_flow="row wrap", margin="4px 0 0"))
        self.details = W.HTML(layout=W.Layout(width="100%"))
        self.details.add_class("nbf-details-widget")
        jobs_tab = W.VBox([self.table, actions, self.details])
        self.timeline = W.HTML(layout=W.Layout(width="100%"))
        self.timeline.add_class("nbf-timeline-widget")
        self.tabs = W.Tab(children=[jobs_tab, self.timeline], titles=["Jobs", "Timeline"])
        self._children = [self.header, self.banner, toolbar, self.tabs]

        self.state_filter.observe(self._on_filter, "value")
        self.text_filter.observe(self._on_filter, "value")
        self.prev_button.on_click(lambda _b: self._turn(-1))
        self.next_button.on_click(lambda _b: self._turn(+1))
        self.clear_button.on_click(lambda _b: self.clear_finished())
        self.pause_button.observe(self._on_pause, "value")
        self.job_select.observe(self._on_select, "value")
        self.cancel_button.on_click(lambda _b: self.cancel_selected())
        self.retry_button.on_click(lambda _b: self.retry_selected())
        self.tabs.observe(self._on_tab, "selected_index")

    # ------------------------------------------------------------ events
    def _on_filter(self, _change: dict) -> None:
        if self._quiet:
            return
        self._page = 0
        self.refresh_now()

    def _turn(self, step: int) -> None:
        self._page = max(0, self._page + step)
        self.refresh_now()

    def _on_pause(self, change: dict) -> None:
        self.pause_button.description = "Resume" if change["new"] else "Pause"
        self.pause_button.icon = "play" if change["new"] else "pause"
        self.refresh_now()

    def _on_select(self, _change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            self._render_details(force=True)
            self._update_action_buttons()

    def _on_tab(self, change: dict) -> None:
        if change["new"] == 1:
            with self._lock:
                self._render_timeline(force=True)

    # ----------------------------------------------------------- actions
    @property
    def paused(self) -> bool:
        """True while the live refresh is paused (the Pause button)."""
        return bool(self.pause_button.value)

    @property
    def selected(self) -> int | None:
        """The id of the job chosen in the details dropdown, or None."""
        return self.job_select.value

    def select(self, job_id: int | None) -> None:
        """Choose a job for the details pane and the Cancel/Retry buttons,
        even one that is not on the current page."""
        with self._lock:
            if job_id is not None and job_id not in self._ids:
                self._set_options(self._ids, self._labels, extra=job_id)
            self.job_select.value = job_id

    def _say(self, text: str, ok: bool = True) -> None:
        self.message.value = f'<span class="nbf msg nbf-msg {"ok" if ok else "err"}">{_esc(text)}</span>'

    def cancel_selected(self) -> bool:
        """Cancel the chosen job (with an interrupt if the box is ticked).
        Returns what `Dispatcher.cancel` returned (False if nothing chosen)."""
        job_id = self.selected
        if job_id is None:
            self._say("choose a job first", ok=False)
            return False
        interrupt = bool(self.interrupt_box.value)
        try:
            ok = self.dispatcher.cancel(job_id, interrupt=interrupt)
        except JobNotFound as exc:
            self._say(str(exc), ok=False)
            return False
        if ok:
            self._say(f"job {job_id}: cancel {'and interrupt ' if interrupt else ''}requested")
        else:
            self._say(f"job {job_id} had already finished", ok=False)
        self.refresh_now()
        return ok

    def retry_selected(self) -> Tracker | None:
        """Queue the chosen finished job again (`Dispatcher.retry`) and choose
        the new job.  Returns its tracker, or None if that was not possible."""
        job_id = self.selected
        if job_id is None:
            self._say("choose a failed job first", ok=False)
            return None
        try:
            tracker = self.dispatcher.retry(job_id)
        except (JobNotFound, ValueError, RuntimeError) as exc:
            self._say(str(exc), ok=False)
            return None
        self._say(f"job {job_id} queued again as job {tracker.id}")
        self._page = 0
        self.refresh_now()
        self.select(tracker.id)
        return tracker

    def clear_finished(self) -> int:
        """Remove every finished job from the registry (`Dispatcher.clear`).
        Returns how many were removed."""
        n = self.dispatcher.clear()
        self._say(f"cleared {n} finished job{'s' if n != 1 else ''}")
        self._page = 0
        self.refresh_now()
        return n

    # ----------------------------------------------------------- refresh
    def refresh_now(self) -> None:
        """Render everything now, in this thread, whatever changed."""
        with self._lock:
            stats = self.dispatcher.stats()
            self._update_banner(time.monotonic(), stats)
            self._render({"stats": stats}, share=False)
        self._hub.arm()

    def _tick(self, shared: dict, force: bool = False) -> None:
        """One pass of the refresh thread.  Only assigns widget traits."""
        if self._closed:
            return
        now = time.monotonic()
        with self._lock:
            self._update_banner(now, shared["stats"])
            if self.paused and not force:
                return
            version = self.dispatcher.registry.version
            if force or (version != self._version and now - self._last_render >= (self._refresh or 0)):
                self._render(shared)
            elif self._details_stale():
                self._render_details()

    def _render(self, shared: dict | None = None, share: bool = True) -> None:
        """Render header, table, details and (if shown) the timeline.

        *shared* is the refresh thread's per-pass cache (with this pass's
        ``stats()``): dashboards on one dispatcher showing the same page
        reuse one rendering.  Caller holds ``_lock``.
        """
        d = self.dispatcher
        self._version = d.registry.version
        self._last_render = time.monotonic()
        if shared is None:
            shared, share = {}, False
        stats = shared.get("stats")
        if stats is None:
            stats = shared["stats"] = d.stats()
        states = STATE_FILTERS[self.state_filter.value]
        key = (states, self.text_filter.value, self._page, self.page_size, self._version)
        page = shared.get(key) if share else None
        if page is None:
            page = render_page(d, states, self.text_filter.value, self._page, self.page_size,
                               stats["counts"])
            if share:
                shared[key] = page
        if page.shown == 0 and self._page > 0 and page.total is not None and page.total <= page.start:
            # The page emptied (jobs cleared or expired): go back to the last one.
            self._page = max(0, (page.total - 1) // self.page_size)
            self._render({}, share=False)
            return
        self.header.value = self._header_html(stats)
        # The row CSS is scoped by this dashboard's own class, so that it
        # cannot style another dashboard's table on the same page.
        self.table.value = (_row_css(self._uid, page.states, page.progress)
                            + f'<div class="nbf {self._uid}">{page.html}</div>')
        self._update_pager(page)
        if page.ids != self._ids:
            self._set_options(page.ids, page.labels)
        self._render_details()
        self._update_action_buttons()
        if self.tabs.selected_index == 1:
            self._render_timeline()
        self.renders += 1

    def _header_html(self, stats: dict) -> str:
        counts = stats["counts"]
        chips = "".join(
            f'<span class="nbf-chip nbf-count-{s.value}" title="{s.value} jobs held now">'
            f'<span class="nbf-dot" style="background:{STATE_COLOURS[s]}"></span>'
            f'{s.value} <b>{counts[s.value]:,}</b></span>' for s in JobState)
        workers, busy = stats["workers"], stats["busy"]
        share = busy / workers if workers else 0.0
        if self.dispatcher.closed:
            live = '<span class="nbf-live off">dispatcher shut down</span>'
        elif self.paused:
            live = '<span class="nbf-live off">paused</span>'
        elif self._refresh is None:
            live = '<span class="nbf-live off">manual refresh</span>'
        else:
            live = (f'<span class="nbf-live on">live · {time.strftime("%H:%M:%S")}</span>')
        return (
            _STYLE + '<div class="nbf nbf-head">'
            f'<span class="nbf-title">nbfrost <span>{_esc(stats.get("backend", ""))}</span></span>'
            f'<span class="nbf-chips">{chips}</span>'
            f'<span class="nbf-kpi nbf-throughput" title="jobs finished per second over the last '
            f'{stats["throughput_window"]} s">throughput <b>{_fmt_rate(stats["throughput"])}</b></span>'
            f'<span class="nbf-kpi nbf-workers" title="workers running a job / all workers">'
            f'workers <b>{busy}/{workers}</b> busy<span class="nbf-meter"><i style="width:{share:.0%}">'
            f'</i></span></span>'
            f'<span class="nbf-kpi" title="jobs held in the registry / ever submitted">'
            f'held <b>{stats["held"]:,}</b> of {stats["submitted"]:,}</span>'
            f'{live}</div>')

    def _update_pager(self, page: _Page) -> None:
        if page.shown:
            first, last = page.start + 1, page.start + page.shown
            of = f" of {page.total:,}" if page.total is not None else ""
            text = f"{first:,}–{last:,}{of}"
        else:
            text = "0 jobs" if not page.start else f"page {self._page + 1}"
        self.page_label.value = f'<span class="nbf nbf-note">{text}</span>'
        self.prev_button.disabled = self._page == 0
        self.next_button.disabled = not page.more

    def _set_options(self, ids: tuple[int, ...], labels: tuple[str, ...],
                     extra: int | None = None) -> None:
        """Offer the page's jobs in the dropdown, keeping the chosen one."""
        options: list[tuple[str, int | None]] = [("— choose a job —", None)]
        keep = self.job_select.value if extra is None else extra
        if keep is not None and keep not in ids:
            try:
                options.append((f"#{keep} · {self.dispatcher.status(keep).name}", keep))
            except JobNotFound:
                options.append((f"#{keep} (gone)", keep))
        options.extend(zip(labels, ids))
        self._quiet = True
        try:
            current = self.job_select.value
            self.job_select.options = options
            if self.job_select.value != current and current in [v for _, v in options]:
                self.job_select.value = current
        finally:
            self._quiet = False
        self._ids = ids
        self._labels = labels

    def _update_action_buttons(self) -> None:
        job_id = self.selected
        state = None
        if job_id is not None:
            try:
                state = self.dispatcher.status(job_id).state
            except JobNotFound:
                state = None
        self.cancel_button.disabled = state is None or state in TERMINAL
        self.interrupt_box.disabled = state is not JobState.RUNNING
        self.retry_button.disabled = state not in (JobState.FAILED, JobState.CANCELLED)

    # ----------------------------------------------------------- details
    def _details_stale(self) -> bool:
        """True if the chosen running job wrote output since its details
        were rendered (output does not move the registry version)."""
        job_id = self.selected
        if job_id is None or self._details_key is None:
            return False
        try:
            tracker = self.dispatcher.tracker(job_id)
        except JobNotFound:
            return False
        return self._details_key != _details_key(tracker)

    def _render_details(self, force: bool = False) -> None:
        job_id = self.selected
        if job_id is None:
            self._details_key = None
            self.details.value = ('<div class="nbf nbf-note" style="padding:4px 2px">'
                                  'Choose a job to see its status, error, traceback and output.</div>')
            return
        try:
            tracker = self.dispatcher.tracker(job_id)
            status = tracker.status()
        except JobNotFound as exc:
            self._details_key = None
            self.details.value = ('<div class="nbf nbf-msg err">'
                                  f'{_esc(exc.args[-1] if exc.args else exc)}</div>')
            return
        key = _details_key(tracker)
        if not force and key == self._details_key:
            return
        self._details_key = key
        output = tracker.output
        tail_note = ""
        if len(output) > _OUTPUT_TAIL:
            tail_note = f" (last {_OUTPUT_TAIL:,} of {len(output):,} characters)"
            output = output[-_OUTPUT_TAIL:]
        status_json = (f'<div><h4>Job {status.id} · status JSON</h4><pre class="nbf-json">'
                       f'{_esc(json.dumps(status.to_dict(), indent=2, default=str))}</pre></div>')
        right = []
        if status.error is not None:
            right.append(f'<h4>Error</h4><pre class="err nbf-error">{_esc(status.error_type)}: '
                         f'{_esc(status.error)}</pre>')
        if status.traceback:
            right.append(f'<h4>Traceback</h4><pre class="err nbf-traceback">{_esc(status.traceback)}</pre>')
        right.append(f'<h4>Output{_esc(tail_note)}</h4>'
                     f'<pre class="nbf-output">{_esc(output) if output else "(no output)"}</pre>')
        self.details.value = (f'<div class="nbf nbf-details"><div>{"".join(right)}</div>{status_json}</div>')

    # ---------------------------------------------------------- timeline
    def _render_timeline(self, force: bool = False) -> None:
        version = self.dispatcher.registry.version
        if not force and version == self._timeline_version:
            return
        self._timeline_version = version
        frame = self.dispatcher.to_frame(newest=self.timeline_jobs)
        self.timeline.value = render_timeline(frame, self.dispatcher.registry.clock(),
                                              self.dispatcher.workers)

    # ------------------------------------------------------------ banner
    def _update_banner(self, now: float, stats: dict) -> None:
        """Flash the first job caught finishing since the last pass, and how
        many more finished (or clear an old notice)."""
        finished = sum(stats["finished"].values())
        fresh = sorted((s, t) for s, t in tuple(self._hub.caught) if s > self._banner_seq)
        if fresh:
            self._banner_seq = fresh[-1][0]
            more = max(0, finished - self._finished_seen - 1)
            self.banner.value = _banner_html(fresh[0][1], more)
            self._banner_until = now + _BANNER_SECONDS
        elif self.banner.value and now >= self._banner_until:
            self.banner.value = ""
        self._finished_seen = finished

    # ------------------------------------------------------------- close
    def close(self) -> None:
        """Stop refreshing this dashboard and close its widgets.  Safe to call twice."""
        closed = getattr(self, "_closed", None)
        if closed is None:  # __init__ raised before the dashboard was set up
            super().close()
            return
        if closed:
            return
        self._closed = True
        self._hub.leave(self)
        for child in self._descendants():
            child.close()
        super().close()

    def _descendants(self) -> list[widgets.Widget]:
        out: list[widgets.Widget] = []
        stack = list(self.children)
        while stack:
            w = stack.pop()
            out.append(w)
            stack.extend(getattr(w, "children", ()))
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        c = self.dispatcher.registry.counts()
        summary = " ".join(f"{k}={v}" for k, v in c.items())
        state = "closed" if self._closed else ("paused" if self.paused else "live")
        return f"<nbfrost.Dashboard {state} {summary}>"


def _details_key(tracker: Tracker) -> tuple:
    """What the details pane shows of a job: if this is unchanged, the pane
    need not be rebuilt.  Output only grows while the job runs, so a
    finished job's output is not measured again."""
    state = tracker.state
    size = -1 if state in TERMINAL else len(tracker.output)
    status = tracker.status()
    return (tracker.id, state, size, status.attempts, status.progress, status.message)


def _banner_html(tracker: Tracker, more: int) -> str:
    """A one-line finish notice for *tracker*'s job (and *more* others)."""
    status = tracker.status()
    name = _esc(status.name)
    if status.state is JobState.SUCCEEDED:
        dur = "" if status.duration is None else f" in {_fmt_duration(status.duration)}"
        text = f"✔ job {status.id} '{name}' finished{dur}"
    elif status.state is JobState.FAILED:
        text = f"✘ job {status.id} '{name}' failed: {_esc(status.error_type)} {_esc(status.error)}"
    else:
        text = f"■ job {status.id} '{name}' cancelled"
    extra = f' <span class="more">and {more} more finished</span>' if more else ""
    return (f'<div class="nbf nbf-banner {status.state.value}" role="status">'
            f'{text}{extra}</div>')

"""What the dashboard shows, as HTML: pure functions of a frame, a status or ``stats()``.

Nothing here touches a widget, so every view can be rendered and tested
without a front end.  `nbfrost.dashboard.widget` puts the strings into
ipywidgets.

Every user string (names, tags, messages, errors, tracebacks, output,
worker names) reaches the browser HTML-escaped through `esc`
(`html.escape`, quotes too, so text is safe in ``title=`` tooltips).
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from ...formatting import duration, job_summary, rate
from ...formatting import window as span
from ...states import STATE_COLOURS, JobState

if TYPE_CHECKING:
    import pandas as pd

    from ...dispatcher import Dispatcher
    from ...job import JobStatus

__all__ = ["STATE_FILTERS", "STYLE", "Page", "esc", "parse_filter", "render_page", "row_css",
           "render_timeline", "header_html", "banner_html", "details_html", "schedules_html"]

#: The state filter's choices: label -> states (None: every state).
STATE_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "active": (JobState.QUEUED.value, JobState.RUNNING.value),
    **{s.value: (s.value,) for s in JobState},
}

#: Table columns, in order.  The per-row CSS below addresses cells by
#: their position, so keep it in step with `_TABLE_COLUMNS`; the stylesheet
#: uses each cell's ``nbf-col-NAME`` class.
_TABLE_COLUMNS = ("id", "name", "tags", "state", "progress", "queued", "started",
                  "finished", "duration", "worker", "attempts", "error")
#: Columns whose text may be longer than the column: cut with an ellipsis
#: (``dashboard.css``), and the whole text in the cell's ``title`` tooltip.
_TOOLTIP_COLUMNS = frozenset({"name", "tags", "progress", "worker", "error"})
_HEAD = ("<thead><tr>" + "".join(f'<th class="nbf-col-{c}"{{id_width}}>{c}</th>' if c == "id"
                                  else f'<th class="nbf-col-{c}">{c}</th>' for c in _TABLE_COLUMNS)
         + "</tr></thead>")
#: The id column is as wide as the page's longest id (never cut: ids are
#: what users type into %frost), at least this many digits, so that short
#: ids leave the room to the text columns.
_MIN_ID_DIGITS = 3
_COL_STATE = _TABLE_COLUMNS.index("state") + 1     # CSS nth-child is 1-based
_COL_PROGRESS = _TABLE_COLUMNS.index("progress") + 1

OUTPUT_TAIL = 4000        # characters of a job's output shown in the details
_NAT = -(2 ** 63)         # pandas' integer for NaT in ``.asi8``

#: The stylesheet, read once from the package data.  Every header carries
#: it, so a dashboard styles itself wherever its output is shown.
STYLE = "<style>" + resources.files(__package__).joinpath("dashboard.css").read_text("utf-8") + "</style>"


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _clock_strings(epoch_ns: Any) -> list[str]:
    """Local ``HH:MM:SS`` for an int64 array of epoch nanoseconds (NaT → "")."""
    out = []
    localtime = time.localtime
    strftime = time.strftime
    for ns in epoch_ns.tolist():
        out.append("" if ns == _NAT else strftime("%H:%M:%S", localtime(ns / 1e9)))
    return out


def _texts(column: Any) -> list:
    """A ``string`` column's values, missing ones (``pd.NA``) as None.

    ``pd.NA`` has no truth value, so plain ``if value:`` tests need this."""
    return column.astype(object).where(column.notna(), None).tolist()


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
class Page:
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


def _display_columns(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The frame from `Dispatcher.to_frame` as display strings, one list
    per `_TABLE_COLUMNS` entry.  User strings stay raw: `_table_html` escapes."""
    states = [str(s) for s in frame["state"].tolist()]
    progress = frame["progress"].tolist()
    messages = _texts(frame["message"])
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
    for etype, err in zip(_texts(frame["error_type"]), _texts(frame["error"])):
        if err is None:
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
        "duration": [duration(x) for x in frame["duration"].tolist()],
        # The thread, worker process ("process-N") or Dask worker that ran it.
        "worker": [w if isinstance(w, str) else "" for w in frame["worker"].tolist()],
        "attempts": [str(a) for a in frame["attempts"].tolist()],
        "error": errors,
    }
    return {c: data[c] for c in _TABLE_COLUMNS}


def _table_html(columns: dict[str, list[str]]) -> str:
    """The job table: every value escaped; long text columns carry their
    whole text as a ``title`` tooltip, since the stylesheet may cut them."""
    names = _TABLE_COLUMNS
    rows = []
    for values in zip(*(columns[c] for c in names)):
        cells = []
        for col, value in zip(names, values):
            text = esc(value)
            tip = f' title="{text}"' if value and col in _TOOLTIP_COLUMNS else ""
            cells.append(f'<td class="nbf-col-{col}"{tip}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    digits = max([_MIN_ID_DIGITS, *map(len, columns["id"])])
    head = _HEAD.replace("{id_width}", f' style="width:calc({digits}ch + 10px)"')
    return f'<table class="nbf-table">{head}<tbody>{"".join(rows)}</tbody></table>'


def row_css(scope: str, states: list[str], progress: list[float]) -> str:
    """Per-row CSS for the state colour and the progress bar of the table
    inside the element with class *scope*.

    The colours and bars are addressed by row position, in CSS scoped to
    one dashboard, so that the page's HTML itself can be shared.  Only enum
    values and numbers go into this CSS, never a user string.
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
                page: int, page_size: int, counts: dict[str, int]) -> Page:
    """Query and render one page of the table (newest first).

    Costs O((page + 1) * page_size): the query asks ``to_frame`` for the
    newest ``(page + 1) * page_size + 1`` matching jobs and shows the last
    *page_size* of them; the extra one says whether an older page exists.
    The total comes from *counts* (``stats()``); with a text filter, it
    costs one pass over the registry to count the matches (only when the
    registry changed since the last render).
    """
    name, tag = parse_filter(text)
    if name is None and tag is None:
        total = sum(counts.values()) if states is None else sum(counts[s] for s in states)
    else:
        total = dispatcher.registry.count(states, name, tag)
    start = page * page_size
    want = start + page_size + 1
    if total is not None:
        # Stop the newest-first scan as soon as every match was seen.
        want = min(want, total)
    frame = dispatcher.to_frame(state=states, name=name, tag=tag, newest=want) if want else None
    if frame is None or len(frame) <= start:
        what = "jobs" if states is None else " or ".join(states) + " jobs"
        where = f" matching {esc(text)!s}" if text.strip() else ""
        more_hint = " on this page" if page else ""
        body = f'<div class="nbf-empty">No {esc(what)}{where}{more_hint}.</div>'
        return Page(body, start=start, total=total)
    more = len(frame) > start + page_size or (total is not None and total > start + page_size)
    frame = frame.iloc[start:start + page_size]
    shown = _display_columns(frame)
    table = _table_html(shown)
    ids = tuple(frame.index.tolist())
    labels = tuple(f"#{i} · {n}" for i, n in zip(ids, shown["name"]))
    return Page(f'<div class="nbf-scroll">{table}</div>', ids, labels, shown["state"],
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
            _texts(frame["worker"]), started_ns.tolist(), finished_ns.tolist(),
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
        tip = f"#{jid} {name} · {state} · {duration(end - start)} on {worker}"
        opacity = ' fill-opacity="0.75"' if state == "running" else ""
        bar = [f'<g class="bar"><title>{esc(tip)}</title>'
               f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 6}" rx="2" '
               f'fill="{colour}"{opacity}/>']
        fits = int((w - 6) // 6.2)
        if fits >= 3:
            text = f"#{jid} {name}"
            if len(text) > fits:
                text = text[: max(1, fits - 1)] + "…"
            bar.append(f'<text x="{x + 3:.1f}" y="{y + lane_h - 10}">{esc(text)}</text>')
        bar.append("</g>")
        parts.append("".join(bar))
    for i, w in enumerate(lanes):
        label_y = top + i * lane_h + lane_h / 2 + 4
        share = busy[w] / span
        name = w if len(w) <= 16 else "…" + w[-15:]
        parts.append(f'<text x="4" y="{label_y:.1f}">{esc(name)}<tspan class="axis" dx="6">'
                     f'{share:.0%}</tspan><title>{esc(w)}: busy {share:.0%} of the window</title></text>')
    parts.append("</svg>")
    capacity = span * max(workers, len(lanes))
    pool = sum(busy.values()) / capacity if capacity else 0.0
    start_clock = time.strftime("%H:%M:%S", time.localtime(t0))
    legend = "".join(
        f'<span><span class="nbf-dot" style="background:{STATE_COLOURS[s]}"></span> {s.value}</span>'
        for s in JobState if s is not JobState.QUEUED)
    caption = (f'<b>{len(rows)}</b> most recent started jobs since {start_clock} '
               f'({duration(span)}) · pool busy <b>{pool:.0%}</b> of '
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


# --------------------------------------------------------- header, banner, details
#: What the header's live indicator says, by refresh mode.
_LIVE = {
    "closed": '<span class="nbf-live off">dispatcher shut down</span>',
    "paused": '<span class="nbf-live off">paused</span>',
    "manual": '<span class="nbf-live off">manual refresh</span>',
}


def header_html(stats: dict[str, Any], mode: str) -> str:
    """The header: counters per state, throughput, busy workers, jobs held,
    and the refresh *mode* (``"live"``, ``"paused"``, ``"manual"`` or
    ``"closed"``).  *stats* is `Dispatcher.stats()`.  Carries the stylesheet."""
    counts = stats["counts"]
    chips = "".join(
        f'<span class="nbf-chip nbf-count-{s.value}" title="{s.value} jobs held now">'
        f'<span class="nbf-dot" style="background:{STATE_COLOURS[s]}"></span>'
        f'{s.value} <b>{counts[s.value]:,}</b></span>' for s in JobState)
    workers, busy = stats["workers"], stats["busy"]
    share = busy / workers if workers else 0.0
    window = span(stats["throughput_window"])
    live = _LIVE.get(mode) or f'<span class="nbf-live on">live · {time.strftime("%H:%M:%S")}</span>'
    return (
        STYLE + '<div class="nbf nbf-head">'
        f'<span class="nbf-title">nbfrost <span>{esc(stats.get("backend", ""))}</span></span>'
        f'<span class="nbf-chips">{chips}</span>'
        f'<span class="nbf-kpi nbf-throughput" title="jobs finished per time over the last '
        f'{window} (the registry\'s first minute: since it was made)">'
        f'throughput <b>{rate(stats["throughput"])}</b> (last {window})</span>'
        f'<span class="nbf-kpi nbf-workers" title="workers running a job / all workers">'
        f'workers <b>{busy}/{workers}</b> busy<span class="nbf-meter"><i style="width:{share:.0%}">'
        f'</i></span></span>'
        f'{_processes_kpi(stats)}'
        f'<span class="nbf-kpi" title="jobs held in the registry / ever submitted">'
        f'held <b>{stats["held"]:,}</b> of {stats["submitted"]:,}</span>'
        f'{live}</div>')


def _processes_kpi(stats: dict[str, Any]) -> str:
    """Busy worker processes of the dispatcher's process pool beside its
    threads (nothing before the pool exists, or when it is the backend)."""
    busy = stats.get("process_busy")
    if busy is None or stats.get("backend") == "processes":
        return ""
    total = stats["process_workers"]
    share = busy / total if total else 0.0
    return (f'<span class="nbf-kpi nbf-processes" title="worker processes running a job / '
            f'all worker processes">processes <b>{busy}/{total}</b> busy<span class="nbf-meter">'
            f'<i style="width:{share:.0%}"></i></span></span>')


def banner_html(status: JobStatus, more: int) -> str:
    """A one-line finish notice for the job of *status* (and *more* others)."""
    extra = f' <span class="more">and {more} more finished</span>' if more else ""
    return (f'<div class="nbf nbf-banner {status.state.value}" role="status">'
            # Element text, not an attribute: quotes may stay as they are.
            f'{html.escape(job_summary(status), quote=False)}{extra}</div>')


def details_html(status: JobStatus, output: str) -> str:
    """The details pane of one job: error, traceback, the tail of its
    *output*, and its status as JSON."""
    tail_note = ""
    if len(output) > OUTPUT_TAIL:
        tail_note = f" (last {OUTPUT_TAIL:,} of {len(output):,} characters)"
        output = output[-OUTPUT_TAIL:]
    status_json = (f'<div><h4>Job {status.id} · status JSON</h4><pre class="nbf-json">'
                   f'{esc(json.dumps(status.to_dict(), indent=2, default=str))}</pre></div>')
    right = []
    if status.error is not None:
        right.append(f'<h4>Error</h4><pre class="err nbf-error">{esc(status.error_type)}: '
                     f'{esc(status.error)}</pre>')
    if status.traceback:
        right.append(f'<h4>Traceback</h4><pre class="err nbf-traceback">{esc(status.traceback)}</pre>')
    right.append(f'<h4>Output{esc(tail_note)}</h4>'
                 f'<pre class="nbf-output">{esc(output) if output else "(no output)"}</pre>')
    return f'<div class="nbf nbf-details"><div>{"".join(right)}</div>{status_json}</div>'


#: Columns of the Schedules tab, in order.
_SCHEDULE_COLUMNS = ("id", "name", "rule", "state", "next run", "last run", "runs", "missed")


def schedules_html(statuses: list[Any]) -> str:
    """The Schedules tab: one row per `ScheduleStatus` (name, the rule in
    words, state, next run, the last run's state, runs, missed).  User
    strings are escaped."""
    head = "".join(f'<th class="nbf-scol-{c.replace(" ", "-")}">{c}</th>' for c in _SCHEDULE_COLUMNS)
    rows = []
    for s in statuses:
        nxt = "" if s.next_run is None else time.strftime("%H:%M:%S", time.localtime(s.next_run.timestamp()))
        last = "" if s.last is None else (
            f'job {s.last} <span class="nbf-state" style="color:'
            f'{STATE_COLOURS.get(JobState(s.last_state), "#6b7280")}">{esc(s.last_state)}</span>')
        state = esc(s.state.value) + (f' <span class="nbf-note">({esc(s.reason)})</span>'
                                      if s.reason else "")
        rows.append(f'<tr class="nbf-schedule-row" data-schedule="{s.id}"><td>{s.id}</td>'
                    f'<td title="{esc(s.name)}">{esc(s.name)}</td>'
                    f'<td title="{esc(s.expression)}">{esc(s.rule)}</td><td>{state}</td>'
                    f"<td>{esc(nxt)}</td><td>{last}</td><td>{s.runs}</td><td>{s.missed}</td></tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(_SCHEDULE_COLUMNS)}" class="nbf-note">No schedules: '
                    "d.every(), d.cron(), d.at() or %%frost --every/--cron/--at make them.</td></tr>")
    return (f'<div class="nbf nbf-scroll"><table class="nbf-table nbf-schedules">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')

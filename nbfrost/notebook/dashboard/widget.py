"""`Dashboard`: the ipywidgets view of a dispatcher's registry.

``nbfrost.Dashboard(d)`` is a `ipywidgets.VBox` made only of standard
widgets (no custom JavaScript, no build step), so it works wherever
ipywidgets does: JupyterLab, Notebook 7, VS Code, Voila.

How it stays cheap: a refresh reads ``Dispatcher.stats()`` (O(1)) and
``Dispatcher.to_frame(newest=...)`` (O(page)), never the whole registry;
the shared refresh thread (`nbfrost.dashboard.hub`) re-renders only what
changed.  The HTML comes from `nbfrost.dashboard.render`.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

try:
    import ipywidgets as widgets
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "nbfrost.Dashboard needs ipywidgets; install it with "
        "`pip install 'ipywidgets>=8'` (or `conda install -c conda-forge ipywidgets`), "
        "then restart the kernel") from _exc

from ...checks import check_count, check_number
from ...errors import JobNotFound
from ...states import TERMINAL, JobState
from ..shell import get_dispatcher
from .hub import MIN_REFRESH, Hub
from .render import (
    STATE_FILTERS,
    Page,
    banner_html,
    details_html,
    esc,
    header_html,
    render_page,
    render_timeline,
    row_css,
    schedules_html,
)

if TYPE_CHECKING:
    from ...dispatcher import Dispatcher
    from ...tracker import Tracker

__all__ = ["Dashboard"]

_BANNER_SECONDS = 4.0     # how long a finish notice stays up
_ids = itertools.count(1)


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
        from ...dispatcher import Dispatcher

        check_number("refresh", refresh, allow_none=True, positive=True)
        page_size = check_count("page_size", page_size, minimum=1, maximum=1000)
        timeline_jobs = check_count("timeline_jobs", timeline_jobs, minimum=1, maximum=5000)
        if refresh is not None:
            refresh = max(float(refresh), MIN_REFRESH)
        if dispatcher is None:
            dispatcher = get_dispatcher()
        elif not isinstance(dispatcher, Dispatcher):
            raise TypeError(f"dispatcher must be an nbfrost.Dispatcher or None, got "
                            f"{type(dispatcher).__name__} {dispatcher!r:.60}")

        self.dispatcher = dispatcher
        self.page_size = page_size
        self.timeline_jobs = timeline_jobs
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
        self._hub = Hub.join(self)
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
        self.clear_button.add_class("nbf-clear")
        # "Clear finished" asks first: a question and two buttons, hidden until asked.
        self.clear_question = W.HTML()
        self.clear_yes = _button("Remove", "trash", "remove them now", "danger")
        self.clear_yes.add_class("nbf-clear-yes")
        self.clear_no = _button("Keep", "", "keep every job")
        self.clear_no.add_class("nbf-clear-no")
        self.clear_confirm = W.HBox([self.clear_question, self.clear_yes, self.clear_no],
                                    layout=W.Layout(align_items="center", display="none"))
        self.clear_confirm.add_class("nbf-clear-confirm")
        self.pause_button = W.ToggleButton(value=False, description="Pause", icon="pause",
                                           tooltip="pause / resume the live refresh",
                                           layout=W.Layout(width="auto", height="28px"))
        self.pause_button.add_class("nbf-pause")
        toolbar = W.HBox([self.state_filter, self.text_filter, self.prev_button, self.page_label,
                          self.next_button, W.HBox(layout=W.Layout(flex="1")),
                          self.clear_button, self.clear_confirm, self.pause_button],
                         layout=W.Layout(align_items="center", flex_flow="row wrap", width="100%",
                                         margin="2px 0"))
        self.table = W.HTML(layout=W.Layout(width="100%"))
        self.table.add_class("nbf-table-widget")
        self.job_select = W.Dropdown(options=[("— choose a job —", None)], value=None,
                                     description="Job", layout=W.Layout(width="260px"),
                                     style={"description_width": "32px"})
        self.job_select.add_class("nbf-job-select")
        # Any job by its id, on this page or not (Enter chooses it).
        self.id_box = W.Text(placeholder="or type an id", continuous_update=False,
                             layout=W.Layout(width="110px"))
        self.id_box.add_class("nbf-id-box")
        self.cancel_button = _button("Cancel", "stop", "cancel the chosen job", "warning")
        self.cancel_button.add_class("nbf-cancel")
        self.interrupt_box = W.Checkbox(value=False, description="interrupt", indent=False,
                                        tooltip="raise JobCancelled inside the running job now",
                                        layout=W.Layout(width="90px"))
        self.retry_button = _button("Retry", "redo", "queue the chosen finished job again")
        self.retry_button.add_class("nbf-retry")
        self.message = W.HTML(layout=W.Layout(width="auto", margin="0 0 0 8px"))
        actions = W.HBox([self.job_select, self.id_box, self.cancel_button, self.interrupt_box,
                          self.retry_button, self.message],
                         layout=W.Layout(align_items="center", flex_flow="row wrap", margin="4px 0 0"))
        self.details = W.HTML(layout=W.Layout(width="100%"))
        self.details.add_class("nbf-details-widget")
        jobs_tab = W.VBox([self.table, actions, self.details])
        self.timeline = W.HTML(layout=W.Layout(width="100%"))
        self.timeline.add_class("nbf-timeline-widget")
        # The Schedules tab: the table, and a chosen schedule's buttons.
        self.schedules_table = W.HTML(layout=W.Layout(width="100%"))
        self.schedules_table.add_class("nbf-schedules-widget")
        self.schedule_select = W.Dropdown(options=[("— choose a schedule —", None)], value=None,
                                          description="Schedule", layout=W.Layout(width="300px"),
                                          style={"description_width": "60px"})
        self.schedule_select.add_class("nbf-schedule-select")
        self.schedule_pause = _button("Pause", "pause", "pause the chosen schedule")
        self.schedule_pause.add_class("nbf-schedule-pause")
        self.schedule_resume = _button("Resume", "play", "resume the chosen schedule")
        self.schedule_resume.add_class("nbf-schedule-resume")
        self.schedule_cancel = _button("Cancel", "stop", "end the chosen schedule", "warning")
        self.schedule_cancel.add_class("nbf-schedule-cancel")
        self.schedule_message = W.HTML(layout=W.Layout(width="auto", margin="0 0 0 8px"))
        schedule_actions = W.HBox([self.schedule_select, self.schedule_pause, self.schedule_resume,
                                   self.schedule_cancel, self.schedule_message],
                                  layout=W.Layout(align_items="center", flex_flow="row wrap",
                                                  margin="4px 0 0"))
        schedules_tab = W.VBox([self.schedules_table, schedule_actions])
        self._schedules_key: Any = None
        self.tabs = W.Tab(children=[jobs_tab, self.timeline, schedules_tab],
                          titles=["Jobs", "Timeline", "Schedules"])
        self._children = [self.header, self.banner, toolbar, self.tabs]

        self.state_filter.observe(self._on_filter, "value")
        self.text_filter.observe(self._on_filter, "value")
        self.prev_button.on_click(lambda _b: self._turn(-1))
        self.next_button.on_click(lambda _b: self._turn(+1))
        self.clear_button.on_click(lambda _b: self.ask_clear())
        self.clear_yes.on_click(lambda _b: self._answer_clear(True))
        self.clear_no.on_click(lambda _b: self._answer_clear(False))
        self.id_box.observe(self._on_id_typed, "value")
        self.pause_button.observe(self._on_pause, "value")
        self.job_select.observe(self._on_select, "value")
        self.cancel_button.on_click(lambda _b: self.cancel_selected())
        self.retry_button.on_click(lambda _b: self.retry_selected())
        self.tabs.observe(self._on_tab, "selected_index")
        self.schedule_select.observe(lambda _c: self._update_schedule_buttons(), "value")
        self.schedule_pause.on_click(lambda _b: self._steer_schedule("pause"))
        self.schedule_resume.on_click(lambda _b: self._steer_schedule("resume"))
        self.schedule_cancel.on_click(lambda _b: self._steer_schedule("cancel"))

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

    def _on_id_typed(self, change: dict) -> None:
        text = str(change["new"]).strip().lstrip("#")
        if self._quiet or not text:
            return
        self._quiet = True
        try:
            self.id_box.value = ""
        finally:
            self._quiet = False
        if not text.isdigit():
            self._say(f"a job id is a number, like 3 (got {text!r:.40})", ok=False)
            return
        self.select(int(text))
        self.message.value = ""
        with self._lock:
            self._render_details(force=True)
            self._update_action_buttons()

    def _on_tab(self, change: dict) -> None:
        if change["new"] == 1:
            with self._lock:
                self._render_timeline(force=True)
        elif change["new"] == 2:
            with self._lock:
                self._render_schedules(force=True)

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
        self.message.value = f'<span class="nbf msg nbf-msg {"ok" if ok else "err"}">{esc(text)}</span>'

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

    def ask_clear(self) -> int:
        """What "Clear finished" does: ask before removing the finished jobs
        (Remove / Keep).  Returns how many would be removed (0: nothing to ask)."""
        counts = self.dispatcher.stats()["counts"]
        n = sum(counts[s.value] for s in TERMINAL)
        if not n:
            self._say("no finished jobs to clear", ok=False)
            return 0
        self.clear_question.value = (f'<span class="nbf nbf-question">Remove {n:,} finished '
                                     f'job{"s" if n != 1 else ""} from the registry?</span>')
        self.clear_button.layout.display = "none"
        self.clear_confirm.layout.display = "flex"
        return n

    def _answer_clear(self, remove: bool) -> None:
        self.clear_confirm.layout.display = "none"
        self.clear_button.layout.display = None
        if remove:
            self.clear_finished()
        else:
            self._say("nothing cleared")

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

    def resend_state(self) -> bool:
        """Render now and send every widget's whole state from this thread.

        For nbclient (papermill, ``nbconvert --execute``), which saves only
        the widget messages of the cell it is executing: nbfrost calls this
        at the end of every cell.  False once the dashboard is closed.
        """
        if self._closed:
            return False
        self.refresh_now()
        with self._lock:
            for widget in [self, *self._descendants()]:
                widget.send_state()
        return True

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
        self.table.value = (row_css(self._uid, page.states, page.progress)
                            + f'<div class="nbf {self._uid}">{page.html}</div>')
        self._update_pager(page)
        if page.ids != self._ids:
            self._set_options(page.ids, page.labels)
        self._render_details()
        self._update_action_buttons()
        if self.tabs.selected_index == 1:
            self._render_timeline()
        elif self.tabs.selected_index == 2:
            self._render_schedules()
        self.renders += 1

    def _header_html(self, stats: dict[str, Any]) -> str:
        if self.dispatcher.closed:
            mode = "closed"
        elif self.paused:
            mode = "paused"
        elif self._refresh is None:
            mode = "manual"
        else:
            mode = "live"
        return header_html(stats, mode)

    def _update_pager(self, page: Page) -> None:
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
                                  f'{esc(exc.args[-1] if exc.args else exc)}</div>')
            return
        key = _details_key(tracker)
        if not force and key == self._details_key:
            return
        self._details_key = key
        self.details.value = details_html(status, tracker.output)

    # ---------------------------------------------------------- timeline
    def _render_timeline(self, force: bool = False) -> None:
        version = self.dispatcher.registry.version
        if not force and version == self._timeline_version:
            return
        self._timeline_version = version
        frame = self.dispatcher.to_frame(newest=self.timeline_jobs)
        d = self.dispatcher
        workers = d.workers  # lanes: the threads, and the worker processes beside them
        if d.process_pool is not None and d.process_pool is not d.backend:
            workers += d.process_workers
        self.timeline.value = render_timeline(frame, d.registry.clock(), workers)

    # --------------------------------------------------------- schedules
    def _render_schedules(self, force: bool = False) -> None:
        """The Schedules tab, when what it shows changed.  Caller holds ``_lock``."""
        statuses = [s.status() for s in self.dispatcher.schedules()]
        key = tuple(statuses)
        if not force and key == self._schedules_key:
            return
        self._schedules_key = key
        self.schedules_table.value = schedules_html(statuses)
        options: list[tuple[str, int | None]] = [("— choose a schedule —", None)]
        options += [(f"#{s.id} · {s.name} · {s.rule}", s.id) for s in statuses]
        if [v for _, v in options] != [v for _, v in self.schedule_select.options]:
            current = self.schedule_select.value
            self.schedule_select.options = options
            if current in [v for _, v in options]:
                self.schedule_select.value = current
        self._update_schedule_buttons()

    def _update_schedule_buttons(self) -> None:
        state = None
        if self.schedule_select.value is not None:
            try:
                state = self.dispatcher.schedule(self.schedule_select.value).state.value
            except KeyError:
                state = None
        self.schedule_pause.disabled = state != "active"
        self.schedule_resume.disabled = state != "paused"
        self.schedule_cancel.disabled = state not in ("active", "paused")

    def select_schedule(self, schedule_id: int | None) -> None:
        """Choose a schedule for the Schedules tab's buttons."""
        with self._lock:
            self._render_schedules(force=True)
            self.schedule_select.value = schedule_id

    def _steer_schedule(self, action: str) -> bool:
        """Pause, resume or cancel the chosen schedule; True if it changed."""
        schedule_id = self.schedule_select.value
        if schedule_id is None:
            self.schedule_message.value = '<span class="nbf nbf-msg err">choose a schedule first</span>'
            return False
        try:
            schedule = self.dispatcher.schedule(schedule_id)
        except KeyError as exc:
            self.schedule_message.value = f'<span class="nbf nbf-msg err">{esc(exc.args[0])}</span>'
            return False
        done = getattr(schedule, action)()
        word = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
        text = f"schedule {schedule_id} {word}" if done else \
            f"schedule {schedule_id} is {schedule.state.value}"
        self.schedule_message.value = (f'<span class="nbf nbf-msg {"ok" if done else "err"}">'
                                       f"{esc(text)}</span>")
        with self._lock:
            self._render_schedules(force=True)
        return bool(done)

    # ------------------------------------------------------------ banner
    def _update_banner(self, now: float, stats: dict) -> None:
        """Flash the first job caught finishing since the last pass, and how
        many more finished (or clear an old notice)."""
        finished = sum(stats["finished"].values())
        fresh = sorted((s, t) for s, t in tuple(self._hub.caught) if s > self._banner_seq)
        if fresh:
            self._banner_seq = fresh[-1][0]
            more = max(0, finished - self._finished_seen - 1)
            self.banner.value = banner_html(fresh[0][1].status(), more)
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
    def refresh_interval(self) -> float | None:
        """Seconds between live renders, or None (only `refresh_now` renders)."""
        return self._refresh

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

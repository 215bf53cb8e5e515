/**
 * The Jobs panel: every publishing process's jobs, grouped by notebook or
 * process, refreshed about once a second while the panel is visible.
 *
 * The server pages the jobs (newest first, `newest`/`offset`), so the panel
 * holds and renders one page at most, whatever the number of jobs.  Rows are
 * kept by key and updated in place, so a button under the pointer is not
 * replaced between mouse down and up, and an opened row stays open.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, IJob, IJobsReply, IProcess, ISchedule, NbfrostAPI, ScheduleAction, STATES, TERMINAL } from './api';
import { formatElapsed, h, setText } from './dom';

/** Jobs shown per page. */
export const PAGE_SIZE = 200;

/** How often the panel asks the server while it is visible (ms). */
export const REFRESH_MS = 1000;

export interface IJobsPanelOptions {
  api: NbfrostAPI;
  /** Opens a notebook by its server path (`docmanager:open`). */
  openPath: (path: string) => void;
  /** Told the running-jobs count after each refresh (the status bar). */
  onRunning?: (running: number) => void;
}

/** Seconds since the epoch, from an ISO 8601 time. */
function epoch(iso: string | null | undefined): number | null {
  if (!iso) {
    return null;
  }
  const ms = Date.parse(iso);
  return isNaN(ms) ? null : ms / 1000;
}

/** How long a job has run (or waited, while queued), in seconds. */
export function elapsed(job: IJob, now: number): number | null {
  if (job.complete && job.duration !== null) {
    return job.duration;
  }
  const started = epoch(job.started_at);
  if (started !== null) {
    return Math.max(0, (epoch(job.finished_at) ?? now) - started);
  }
  const queued = epoch(job.queued_at);
  return queued === null ? null : Math.max(0, now - queued);
}

/** One job's row: summary line, progress, buttons, details when opened. */
class JobRow {
  readonly node: HTMLElement;
  private _job: IJob;
  private _open = false;
  private readonly _state = h('span', { className: 'nbfrost-state' });
  private readonly _name = h('span', { className: 'nbfrost-job-name' });
  private readonly _tags = h('span', { className: 'nbfrost-tags' });
  private readonly _elapsed = h('span', { className: 'nbfrost-elapsed' });
  private readonly _fill = h('div', { className: 'nbfrost-progress-fill' });
  private readonly _bar = h('div', { className: 'nbfrost-progress' }, [this._fill]);
  private readonly _message = h('span', { className: 'nbfrost-message' });
  private readonly _cancel: HTMLButtonElement;
  private readonly _interrupt: HTMLButtonElement;
  private readonly _retry: HTMLButtonElement;
  private readonly _details = h('div', { className: 'nbfrost-details' });
  private _detailsKey = '';

  constructor(
    job: IJob,
    private readonly _panel: JobsPanel
  ) {
    this._job = job;
    this._cancel = this._button('Cancel', 'nbfrost-cancel', 'Cancel the job (cooperatively)', () =>
      this._panel.act(this._job, 'cancel')
    );
    this._interrupt = this._button(
      'Interrupt',
      'nbfrost-interrupt',
      'Cancel the job and interrupt its worker',
      () => this._panel.act(this._job, 'interrupt')
    );
    this._retry = this._button('Retry', 'nbfrost-retry', 'Run the job again', () =>
      this._panel.act(this._job, 'retry')
    );
    const summary = h('div', { className: 'nbfrost-job-summary' }, [
      this._state,
      this._name,
      this._tags,
      this._elapsed
    ]);
    summary.addEventListener('click', () => this.toggle());
    const progress = h('div', { className: 'nbfrost-job-progress' }, [this._bar, this._message]);
    const actions = h('div', { className: 'nbfrost-actions' }, [
      this._cancel,
      this._interrupt,
      this._retry
    ]);
    this.node = h('div', { className: 'nbfrost-job' }, [summary, progress, actions, this._details]);
    this._details.hidden = true;
  }

  private _button(label: string, className: string, title: string, act: () => void): HTMLButtonElement {
    const button = h('button', { className: `jp-Button nbfrost-button ${className}`, text: label, title });
    button.type = 'button';
    button.addEventListener('click', event => {
      event.stopPropagation();
      act();
    });
    return button;
  }

  toggle(): void {
    this._open = !this._open;
    this.node.classList.toggle('nbfrost-open', this._open);
    this._details.hidden = !this._open;
    this._renderDetails();
  }

  update(job: IJob, now: number, processAlive: boolean): void {
    this._job = job;
    const node = this.node;
    node.dataset.state = job.state;
    node.dataset.jobId = String(job.id);
    node.dataset.process = job.process;
    setText(this._state, job.state);
    setText(this._name, job.name);
    this._name.title = job.name;
    const tags = job.tags.join('\u0000');
    if (this._tags.dataset.tags !== tags) {
      this._tags.dataset.tags = tags;
      this._tags.replaceChildren(...job.tags.map(tag => h('span', { className: 'nbfrost-tag', text: tag })));
    }
    setText(this._elapsed, formatElapsed(elapsed(job, now)));
    const progress = job.progress;
    this._bar.hidden = progress === null || progress === undefined;
    const width = `${Math.round(Math.min(1, Math.max(0, progress ?? 0)) * 100)}%`;
    if (this._fill.style.width !== width) {
      this._fill.style.width = width;
    }
    this._bar.title = progress === null ? '' : width;
    setText(this._message, job.message ?? '');
    const active = !TERMINAL.has(job.state);
    this._cancel.hidden = !active || !processAlive;
    this._interrupt.hidden = job.state !== 'running' || !processAlive;
    this._retry.hidden = !(job.state === 'failed' || job.state === 'cancelled') || !processAlive;
    if (this._open) {
      this._renderDetails();
    }
  }

  private _renderDetails(): void {
    if (!this._open) {
      return;
    }
    const job = this._job;
    const key = JSON.stringify([
      job.state,
      job.error,
      job.traceback,
      job.output_tail,
      job.attempts,
      job.worker,
      job.finished_at
    ]);
    if (key === this._detailsKey) {
      return;
    }
    this._detailsKey = key;
    const facts: [string, string][] = [
      ['id', String(job.id)],
      ['queued', job.queued_at],
      ['started', job.started_at ?? ''],
      ['finished', job.finished_at ?? ''],
      ['attempts', String(job.attempts)],
      ['worker', job.worker ?? '']
    ];
    const children: Node[] = [
      h(
        'dl',
        { className: 'nbfrost-facts' },
        facts
          .filter(([, value]) => value !== '')
          .flatMap(([label, value]) => [h('dt', { text: label }), h('dd', { text: value })])
      )
    ];
    if (job.error) {
      children.push(
        h('div', {
          className: 'nbfrost-error',
          text: job.error_type ? `${job.error_type}: ${job.error}` : job.error
        })
      );
    }
    if (job.traceback) {
      children.push(h('pre', { className: 'nbfrost-traceback', text: job.traceback }));
    }
    if (job.output_tail) {
      children.push(h('div', { className: 'nbfrost-label', text: 'Output (last lines)' }));
      children.push(h('pre', { className: 'nbfrost-output', text: job.output_tail }));
    }
    this._details.replaceChildren(...children);
  }
}

/** A process's group: its header (name, where, counts) and its jobs' rows. */
class ProcessGroup {
  readonly node: HTMLElement;
  readonly list = h('div', { className: 'nbfrost-group-jobs' });
  private readonly _title: HTMLButtonElement;
  private readonly _where = h('span', { className: 'nbfrost-where' });
  private readonly _alive = h('span', { className: 'nbfrost-alive' });
  private readonly _counts = h('span', { className: 'nbfrost-counts' });
  private readonly _cancelAll: HTMLButtonElement;
  private _process: IProcess | null = null;

  constructor(
    readonly id: string,
    panel: JobsPanel
  ) {
    this._title = h('button', { className: 'nbfrost-process-name' });
    this._title.type = 'button';
    this._title.addEventListener('click', () => {
      if (this._process?.path) {
        panel.open(this._process.path);
      }
    });
    this._cancelAll = h('button', {
      className: 'jp-Button nbfrost-button nbfrost-cancel-all',
      text: 'Cancel all',
      title: "Cancel this process's queued and running jobs"
    });
    this._cancelAll.type = 'button';
    this._cancelAll.addEventListener('click', () => {
      if (this._process) {
        void panel.cancelProcess(this._process);
      }
    });
    const header = h('div', { className: 'nbfrost-group-header' }, [
      this._title,
      this._alive,
      this._where,
      this._counts,
      this._cancelAll
    ]);
    this.node = h('section', { className: 'nbfrost-group' }, [header, this.list]);
    this.node.dataset.process = id;
  }

  update(process: IProcess | undefined, fallbackPath: string | null): void {
    const p: IProcess = process ?? {
      id: this.id,
      kernel_id: null,
      path: fallbackPath,
      name: fallbackPath ?? this.id,
      pid: 0,
      host: '',
      alive: false,
      started: 0,
      updated: 0,
      counts: {}
    };
    this._process = p;
    const label = p.path ?? p.name;
    setText(this._title, label);
    this._title.title = p.path ? `Open ${p.path}` : p.name;
    this._title.disabled = !p.path;
    this.node.dataset.path = p.path ?? '';
    this.node.dataset.alive = String(p.alive);
    setText(this._alive, p.alive ? 'alive' : 'gone');
    setText(this._where, p.pid ? `pid ${p.pid}${p.host ? ' on ' + p.host : ''}` : '');
    setText(
      this._counts,
      STATES.filter(state => (p.counts[state] ?? 0) > 0)
        .map(state => `${p.counts[state]} ${state}`)
        .join(' · ')
    );
    this._cancelAll.hidden = !p.alive || !((p.counts.running ?? 0) + (p.counts.queued ?? 0));
  }
}

/** The left-sidebar Jobs panel. */
export class JobsPanel extends Widget {
  private readonly _api: NbfrostAPI;
  private readonly _options: IJobsPanelOptions;
  private readonly _stateFilter: HTMLSelectElement;
  private readonly _textFilter: HTMLInputElement;
  private readonly _status = h('div', { className: 'nbfrost-status' });
  private readonly _pageLabel = h('span', { className: 'nbfrost-page-label' });
  private readonly _prev: HTMLButtonElement;
  private readonly _next: HTMLButtonElement;
  private readonly _groupsNode = h('div', { className: 'nbfrost-groups' });
  private readonly _schedulesNode = h('section', { className: 'nbfrost-schedules' });
  private _schedulesKey = '';
  private readonly _empty = h('div', { className: 'nbfrost-empty' });
  private readonly _groups = new Map<string, ProcessGroup>();
  private readonly _rows = new Map<string, JobRow>();
  private _offset = 0;
  private _total = 0;
  private _timer: number | undefined;
  private _inFlight = false;
  private _again = false;

  constructor(options: IJobsPanelOptions) {
    super();
    this._options = options;
    this._api = options.api;
    this.addClass('nbfrost-panel');
    this._stateFilter = h('select', { className: 'nbfrost-state-filter', title: 'Show jobs in this state' }, [
      h('option', { text: 'All states', attrs: { value: '' } }),
      ...STATES.map(state => h('option', { text: state, attrs: { value: state } }))
    ]);
    this._stateFilter.addEventListener('change', () => this._filtersChanged());
    this._textFilter = h('input', {
      className: 'jp-mod-styled nbfrost-text-filter',
      title: 'Show jobs whose name contains this text',
      attrs: { type: 'search', placeholder: 'Filter by name' }
    });
    this._textFilter.addEventListener('input', () => this._filtersChanged());
    this._prev = h('button', { className: 'jp-Button nbfrost-button nbfrost-prev', text: 'Newer', title: 'Newer jobs' });
    this._next = h('button', { className: 'jp-Button nbfrost-button nbfrost-next', text: 'Older', title: 'Older jobs' });
    this._prev.addEventListener('click', () => this._page(-1));
    this._next.addEventListener('click', () => this._page(1));
    const toolbar = h('div', { className: 'nbfrost-toolbar' }, [this._stateFilter, this._textFilter]);
    const pager = h('div', { className: 'nbfrost-pager' }, [this._prev, this._pageLabel, this._next]);
    this.node.append(
      h('header', { className: 'nbfrost-title', text: 'Jobs' }),
      toolbar,
      pager,
      this._status,
      this._schedulesNode,
      this._empty,
      this._groupsNode
    );
    this._schedulesNode.hidden = true;
  }

  /** Opens a notebook by its server path. */
  open(path: string): void {
    this._options.openPath(path);
  }

  /** Cancel, interrupt or retry one job, then refresh at once. */
  async act(job: IJob, action: 'cancel' | 'interrupt' | 'retry'): Promise<void> {
    try {
      if (action === 'retry') {
        await this._api.retry(job.process, job.id);
      } else {
        await this._api.cancel(job.process, job.id, action === 'interrupt');
      }
      this._say('');
    } catch (error) {
      this._say(`${action} of job ${job.id} failed: ${(error as Error).message}`);
    }
    void this.refresh();
  }

  /** Cancels every queued or running job of one process. */
  async cancelProcess(process: IProcess): Promise<void> {
    try {
      const cancelled = await cancelJobsOf(this._api, [process]);
      this._say(`asked ${cancelled} job(s) of ${process.path ?? process.name} to cancel`);
    } catch (error) {
      this._say(`cancelling failed: ${(error as Error).message}`);
    }
    void this.refresh();
  }

  /** Asks the server for the processes and the current page, and shows them. */
  async refresh(): Promise<void> {
    if (this._inFlight) {
      this._again = true;
      return;
    }
    this._inFlight = true;
    try {
      const text = this._textFilter.value.trim();
      const state = this._stateFilter.value;
      const offset = this._offset;
      const [processes, jobs] = await Promise.all([
        this._api.processes(),
        this._api.jobs({
          states: state ? [state] : [],
          name: text || undefined,
          newest: PAGE_SIZE,
          offset
        })
      ]);
      // The user paged or filtered while this answer was on its way: it
      // belongs to the old view, so don't show it under the new page's
      // label; the refresh the change asked for follows at once.
      if (
        offset !== this._offset ||
        text !== this._textFilter.value.trim() ||
        state !== this._stateFilter.value
      ) {
        this._again = true;
        return;
      }
      this._render(processes.processes, jobs);
      this._options.onRunning?.(countRunning(processes.processes));
      if (this._status.dataset.kind === 'error') {
        this._say('');
      }
    } catch (error) {
      const message =
        error instanceof ApiError && error.status === 404
          ? 'The nbfrost server extension is not enabled on this server (jupyter server extension list).'
          : `Cannot reach the nbfrost server extension: ${(error as Error).message}`;
      this._say(message, 'error');
    } finally {
      this._inFlight = false;
      if (this._again) {
        this._again = false;
        void this.refresh();
      }
    }
  }

  protected onAfterShow(): void {
    this._start();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      this._start();
    }
  }

  protected onAfterHide(): void {
    this._stop();
  }

  protected onBeforeDetach(): void {
    this._stop();
  }

  dispose(): void {
    this._stop();
    super.dispose();
  }

  private _start(): void {
    if (this._timer !== undefined) {
      return;
    }
    const tick = () => {
      if (this.isVisible && !document.hidden) {
        void this.refresh();
      }
    };
    this._timer = window.setInterval(tick, REFRESH_MS);
    tick();
  }

  private _stop(): void {
    if (this._timer !== undefined) {
      window.clearInterval(this._timer);
      this._timer = undefined;
    }
  }

  private _filtersChanged(): void {
    this._offset = 0;
    void this.refresh();
  }

  private _page(direction: number): void {
    const offset = Math.max(0, this._offset + direction * PAGE_SIZE);
    if (offset !== this._offset && (direction < 0 || offset < this._total)) {
      this._offset = offset;
      void this.refresh();
    }
  }

  private _say(message: string, kind = 'info'): void {
    setText(this._status, message);
    this._status.dataset.kind = message ? kind : '';
    this._status.hidden = !message;
  }

  /** Pause, resume or end a schedule, then refresh at once. */
  async steer(process: IProcess, schedule: ISchedule, action: ScheduleAction): Promise<void> {
    try {
      await this._api.steerSchedule(process.id, schedule.id, action);
      this._say('');
    } catch (error) {
      this._say(`${action} of schedule ${schedule.id} failed: ${(error as Error).message}`);
    }
    void this.refresh();
  }

  /**
   * The live processes' active and paused schedules, above the jobs (text
   * only), with Pause/Resume and Unschedule.  Rebuilt only when what it
   * shows changed, so that a button is not replaced under the pointer.
   */
  private _renderSchedules(processes: IProcess[]): void {
    const shown: [IProcess, ISchedule][] = [];
    for (const p of processes) {
      if (!p.alive) {
        continue;
      }
      for (const s of p.schedules ?? []) {
        if (s.state !== 'ended') {
          shown.push([p, s]);
        }
      }
    }
    const key = JSON.stringify(shown.map(([p, s]) => [p.id, p.path, s]));
    if (key === this._schedulesKey) {
      return;
    }
    this._schedulesKey = key;
    const lines: HTMLElement[] = [];
    for (const [p, s] of shown) {
      const next = s.next_run ? new Date(s.next_run).toLocaleTimeString() : '—';
      const facts = [s.rule, `next ${next}`, `${s.runs} run${s.runs === 1 ? '' : 's'}`];
      if (s.missed) {
        facts.push(`${s.missed} missed`);
      }
      if (s.last_state) {
        facts.push(`last ${s.last_state}`);
      }
      const paused = s.state === 'paused';
      const toggle = h('button', {
        className: `jp-Button nbfrost-button ${paused ? 'nbfrost-resume' : 'nbfrost-pause'}`,
        text: paused ? 'Resume' : 'Pause',
        title: paused ? 'Resume this schedule' : 'Pause this schedule (its running job goes on)'
      });
      toggle.type = 'button';
      toggle.addEventListener('click', () => void this.steer(p, s, paused ? 'resume' : 'pause'));
      const end = h('button', {
        className: 'jp-Button nbfrost-button nbfrost-unschedule',
        text: 'Unschedule',
        title: 'End this schedule (its running job goes on)'
      });
      end.type = 'button';
      end.addEventListener('click', () => void this.steer(p, s, 'unschedule'));
      const line = h('div', { className: 'nbfrost-schedule', title: `${p.path ?? p.name}: schedule ${s.id}` }, [
        h('span', { className: 'nbfrost-state', text: s.state }),
        h('span', { className: 'nbfrost-schedule-name', text: s.name }),
        h('span', { className: 'nbfrost-schedule-facts', text: facts.join(' · ') }),
        h('span', { className: 'nbfrost-where', text: p.path ?? p.name }),
        h('span', { className: 'nbfrost-actions' }, [toggle, end])
      ]);
      line.dataset.state = s.state;
      line.dataset.process = p.id;
      lines.push(line);
    }
    this._schedulesNode.replaceChildren(
      ...(lines.length ? [h('div', { className: 'nbfrost-label', text: `Schedules (${lines.length})` }), ...lines] : [])
    );
    this._schedulesNode.hidden = lines.length === 0;
  }

  private _render(processes: IProcess[], reply: IJobsReply): void {
    this._renderSchedules(processes);
    const byId = new Map(processes.map(p => [p.id, p]));
    this._total = reply.total;
    if (this._offset > 0 && this._offset >= reply.total) {
      this._offset = Math.max(0, Math.floor((reply.total - 1) / PAGE_SIZE) * PAGE_SIZE);
    }
    const first = reply.jobs.length ? this._offset + 1 : 0;
    setText(
      this._pageLabel,
      `${first.toLocaleString()}–${(this._offset + reply.jobs.length).toLocaleString()} of ${reply.total.toLocaleString()}`
    );
    this._prev.disabled = this._offset === 0;
    this._next.disabled = this._offset + reply.jobs.length >= reply.total;
    const filtered = this._stateFilter.value !== '' || this._textFilter.value.trim() !== '';
    setText(
      this._empty,
      reply.jobs.length ? '' : filtered ? 'No job matches the filters.' : 'No jobs yet: nbfrost jobs of every kernel show here.'
    );
    this._empty.hidden = reply.jobs.length > 0;

    // Group the page's jobs by process, groups in the order their newest job comes.
    const order: string[] = [];
    const jobsOf = new Map<string, IJob[]>();
    for (const job of reply.jobs) {
      let list = jobsOf.get(job.process);
      if (!list) {
        list = [];
        jobsOf.set(job.process, list);
        order.push(job.process);
      }
      list.push(job);
    }
    const seenRows = new Set<string>();
    order.forEach((processId, index) => {
      let group = this._groups.get(processId);
      if (!group) {
        group = new ProcessGroup(processId, this);
        this._groups.set(processId, group);
      }
      const process = byId.get(processId);
      const jobs = jobsOf.get(processId)!;
      group.update(process, jobs[0].path);
      const alive = process?.alive ?? false;
      jobs.forEach((job, position) => {
        const key = `${processId}\u0000${job.id}`;
        seenRows.add(key);
        let row = this._rows.get(key);
        if (!row) {
          row = new JobRow(job, this);
          this._rows.set(key, row);
        }
        row.update(job, reply.now, alive);
        if (group!.list.children[position] !== row.node) {
          group!.list.insertBefore(row.node, group!.list.children[position] ?? null);
        }
      });
      while (group.list.children.length > jobs.length) {
        group.list.lastElementChild!.remove();
      }
      if (this._groupsNode.children[index] !== group.node) {
        this._groupsNode.insertBefore(group.node, this._groupsNode.children[index] ?? null);
      }
    });
    const seenGroups = new Set(order);
    for (const [id, group] of this._groups) {
      if (!seenGroups.has(id)) {
        group.node.remove();
        this._groups.delete(id);
      }
    }
    for (const [key, row] of this._rows) {
      if (!seenRows.has(key)) {
        row.node.remove();
        this._rows.delete(key);
      }
    }
  }
}

/** Running jobs across every live process. */
export function countRunning(processes: IProcess[]): number {
  return processes.reduce((sum, p) => sum + (p.alive ? p.counts.running ?? 0 : 0), 0);
}

/**
 * Asks every queued or running job of these processes to cancel: one
 * request per process (the process cancels all its jobs, also those beyond
 * the newest it publishes); how many jobs they had active when listed.
 */
export async function cancelJobsOf(api: NbfrostAPI, processes: IProcess[]): Promise<number> {
  let asked = 0;
  for (const process of processes) {
    if (!process.alive) {
      continue;
    }
    await api.cancelAll(process.id, false);
    asked += (process.counts.queued ?? 0) + (process.counts.running ?? 0);
  }
  return asked;
}

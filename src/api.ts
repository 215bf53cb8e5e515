/**
 * The nbfrost server extension's REST API (PANEL-CONTRACT.md), under
 * `<base_url>/nbfrost/api/`.  Requests go through ServerConnection, which
 * adds the token and the XSRF header that jupyter_server asks of POSTs.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A process that publishes its jobs: a kernel, a papermill run, a script. */
export interface IProcess {
  id: string;
  kernel_id: string | null;
  path: string | null;
  name: string;
  pid: number;
  host: string;
  alive: boolean;
  started: number;
  updated: number;
  counts: { [state: string]: number };
  /** Its schedules (`ScheduleStatus.to_dict()`), active and paused first; none once it is gone. */
  schedules?: ISchedule[];
}

/** What the panel can do to a schedule. */
export type ScheduleAction = 'pause' | 'resume' | 'unschedule';

/** A schedule of a process: every/cron/at, its state and next run. */
export interface ISchedule {
  id: number;
  name: string;
  rule: string;
  state: string;
  next_run: string | null;
  last: number | null;
  last_state: string | null;
  runs: number;
  missed: number;
  reason: string | null;
  tags: string[];
}

export interface IProcessesReply {
  processes: IProcess[];
  now: number;
}

/** One job: the status JSON of `Dispatcher.to_json()` plus where it runs. */
export interface IJob {
  id: number;
  name: string;
  state: string;
  complete: boolean;
  success?: boolean;
  error: string | null;
  error_type: string | null;
  traceback: string | null;
  queued_at: string;
  started_at: string | null;
  finished_at?: string;
  duration: number | null;
  worker: string | null;
  progress: number | null;
  message: string | null;
  tags: string[];
  attempts: number;
  process: string;
  path: string | null;
  /** The last lines the job printed (the publisher keeps a bounded tail). */
  output_tail?: string | null;
}

export interface IJobsReply {
  jobs: IJob[];
  total: number;
  now: number;
}

/** What the jobs list asks for: `GET /nbfrost/api/jobs` parameters. */
export interface IJobsQuery {
  states?: string[];
  process?: string;
  name?: string;
  tag?: string;
  newest?: number;
  offset?: number;
}

/** Every state a job can show; `lost` is a job of a process that died. */
export const STATES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'lost'
];

/** States after which a job never changes. */
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'lost']);

/** An error the API answered with, carrying its `message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export class NbfrostAPI {
  constructor(readonly settings: ServerConnection.ISettings) {}

  processes(): Promise<IProcessesReply> {
    return this._request<IProcessesReply>('processes');
  }

  jobs(query: IJobsQuery = {}): Promise<IJobsReply> {
    const params = new URLSearchParams();
    for (const state of query.states ?? []) {
      params.append('state', state);
    }
    if (query.process) {
      params.set('process', query.process);
    }
    if (query.name) {
      params.set('name', query.name);
    }
    if (query.tag) {
      params.set('tag', query.tag);
    }
    if (query.newest !== undefined) {
      params.set('newest', String(query.newest));
    }
    if (query.offset) {
      params.set('offset', String(query.offset));
    }
    const search = params.toString();
    return this._request<IJobsReply>('jobs' + (search ? '?' + search : ''));
  }

  cancel(process: string, job: number, interrupt: boolean): Promise<unknown> {
    return this._post(`${this._jobPath(process, job)}/cancel`, { interrupt });
  }

  /** Cancels every queued and running job of *process*, in one command. */
  cancelAll(process: string, interrupt: boolean): Promise<unknown> {
    return this._post(`processes/${encodeURIComponent(process)}/cancel`, { interrupt });
  }

  /** Pauses, resumes or ends one schedule of *process*. */
  steerSchedule(process: string, schedule: number, action: ScheduleAction): Promise<unknown> {
    return this._post(
      `processes/${encodeURIComponent(process)}/schedules/${encodeURIComponent(String(schedule))}/${action}`,
      {}
    );
  }

  retry(process: string, job: number): Promise<unknown> {
    return this._post(`${this._jobPath(process, job)}/retry`, {});
  }

  private _jobPath(process: string, job: number): string {
    return `processes/${encodeURIComponent(process)}/jobs/${encodeURIComponent(String(job))}`;
  }

  private _post(endpoint: string, body: unknown): Promise<unknown> {
    return this._request(endpoint, {
      method: 'POST',
      body: JSON.stringify(body)
    });
  }

  private async _request<T>(endpoint: string, init: RequestInit = {}): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'nbfrost', 'api', endpoint);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
    const text = await response.text();
    let data: any = null;
    if (text.length > 0) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message =
        data && typeof data.message === 'string'
          ? data.message
          : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message);
    }
    return data as T;
  }
}

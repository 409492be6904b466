// Runs a throwaway Prometheus server for tests: its own config, temp storage, 127.0.0.1 only.
// The binary is TOLLGATE_TEST_PROMETHEUS_BIN (test/setup/test-tools.ts finds or installs it), else
// `prometheus` on PATH. A missing binary fails the test that needs it: it is never skipped.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** An instant query through the HTTP API (`/api/v1/query`); scalars come back as one sample. */
  query(expr: string): Promise<PromSample[]>;
  /** `/api/v1/label/<label>/values?match[]=<selector>`: what Grafana's label_values() asks. */
  labelValues(label: string, selector: string): Promise<string[]>;
  /** Waits until a scrape of `job` newer than `afterMs` (epoch ms) is stored. */
  waitForScrape(job: string, afterMs: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** Scrape targets, `host:port` of each job. */
  readonly jobs: Readonly<Record<string, string>>;
  readonly scrapeIntervalS?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function configYaml(options: StartPrometheusOptions): string {
  const interval = `${options.scrapeIntervalS ?? 1}s`;
  const jobs = Object.entries(options.jobs).map(
    ([job, target]) => `  - job_name: ${job}\n    metrics_path: /metrics\n    static_configs:\n      - targets: ["${target}"]\n`,
  );
  return `global:\n  scrape_interval: ${interval}\n  evaluation_interval: ${interval}\nscrape_configs:\n${jobs.join('')}`;
}

function spawnPrometheus(bin: string, dir: string, port: number): { child: ChildProcess; output: () => string; exited: Promise<Error | undefined> } {
  const child = spawn(
    bin,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (d: Buffer) => {
    if (output.length < 16_384) output += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<Error | undefined>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' ? new Error(`Cannot start '${bin}': not found on PATH. Install it: apt-get install prometheus (.ci/run does).`) : err),
    );
    child.once('exit', (code, signal) => resolve(new Error(`prometheus exited (${code ?? signal})\n${output.trim()}`)));
  });
  return { child, output: () => output, exited };
}

async function api<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`prometheus: ${body.error ?? res.status} (${url})`);
  return body.data;
}

export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusServer> {
  const bin = process.env.TOLLGATE_TEST_PROMETHEUS_BIN ?? 'prometheus';
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), configYaml(options));
  const port = await freePort();
  const { child, exited } = spawnPrometheus(bin, dir, port);
  let gone: Error | undefined;
  void exited.then((err) => {
    gone = err;
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (!gone) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + 30_000;
  while (!(await fetch(`${url}/-/ready`).then((r) => r.ok, () => false))) {
    if (gone) throw gone;
    if (Date.now() > deadline) {
      await stop();
      throw new Error('prometheus did not become ready within 30 s');
    }
    await sleep(50);
  }

  const query = async (expr: string): Promise<PromSample[]> => {
    const data = await api<{ resultType: string; result: unknown }>(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType === 'scalar') return [{ metric: {}, value: Number((data.result as [number, string])[1]) }];
    return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };

  return {
    url,
    query,
    labelValues: (label, selector) => api<string[]>(`${url}/api/v1/label/${encodeURIComponent(label)}/values?match[]=${encodeURIComponent(selector)}`),
    async waitForScrape(job, afterMs, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const [sample] = await query(`timestamp(up{job="${job}"})`);
        if (sample && sample.value * 1000 > afterMs) return;
        if (Date.now() > until) throw new Error(`no scrape of ${job} after ${new Date(afterMs).toISOString()} within ${timeoutMs} ms`);
        await sleep(100);
      }
    },
    stop,
  };
}

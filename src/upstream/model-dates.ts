import type { Catalogue, LearnedShutdown } from '../config/catalogue.js';
import { readAnswer } from './buffered.js';
import { modelsRequest, type PoolMember } from './member.js';

/**
 * Shutdown dates learned from the upstreams' own `GET /models`: once at start, then every
 * `models.upstream_refresh_ms`, each member is asked with its own credential. An entry of the list
 * (`data[]`, by `id`) may name its shutdown as
 *   - `shutdown_date`: `YYYY-MM-DD` (UTC midnight), an ISO 8601 date-time, or Unix seconds;
 *   - `shutdown_at`: Unix seconds (or an ISO 8601 date-time);
 *   - `deprecation.inference`: Unix seconds (Azure OpenAI's models list);
 * the earliest counts, and the earliest over the upstreams. `successor` (or `replacement`) names
 * its successor. Ids resolve through the catalogue (aliases included); models outside it are
 * ignored, and the catalogue's own `shutdown_date` wins. An upstream that fails to answer takes
 * nothing away: its dates learned before are kept until it answers again.
 */

export interface ModelDatesOptions {
  readonly members: readonly PoolMember[];
  readonly catalogue: Catalogue;
  /** 0: never (nothing is fetched, not even at start). */
  readonly intervalMs: number;
  readonly onLearned?: ((models: readonly string[]) => void) | undefined;
  readonly onError?: ((upstream: string, reason: string) => void) | undefined;
}

export interface ModelDates {
  /** One round over the members (the timer's, or a test's). */
  refresh(): Promise<void>;
  close(): void;
}

const FETCH_TIMEOUT_MS = 10_000;
const MAX_LIST_BYTES = 8 * 1024 * 1024;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

function instant(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value * 1000 : undefined;
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const ms = Date.parse(DAY.test(value) ? `${value}T00:00:00Z` : value);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** The shutdowns a `GET /models` answer reports, by catalogue name. */
export function shutdownsFrom(list: unknown, catalogue: Catalogue): Map<string, LearnedShutdown> {
  const found = new Map<string, LearnedShutdown>();
  const data = (list as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return found;
  for (const entry of data as unknown[]) {
    if (entry === null || typeof entry !== 'object') continue;
    const { id, shutdown_date, shutdown_at, deprecation, successor, replacement } = entry as Record<string, unknown>;
    if (typeof id !== 'string') continue;
    const name = catalogue.resolve(id)?.name;
    if (name === undefined) continue;
    const inference = deprecation !== null && typeof deprecation === 'object' ? (deprecation as { inference?: unknown }).inference : undefined;
    const times = [instant(shutdown_date), instant(shutdown_at), typeof inference === 'number' ? instant(inference) : undefined].filter((t): t is number => t !== undefined);
    if (times.length === 0) continue;
    const shutdownMs = Math.min(...times);
    const named = typeof successor === 'string' ? successor : typeof replacement === 'string' ? replacement : undefined;
    found.set(name, { shutdownMs, shutdownDate: new Date(shutdownMs).toISOString().slice(0, 10), successor: named });
  }
  return found;
}

async function listOf(member: PoolMember): Promise<unknown> {
  const answer = await member.upstream.send(modelsRequest(member, FETCH_TIMEOUT_MS));
  if (answer.status !== 200) {
    answer.body.destroy();
    throw new Error(`status ${answer.status}`);
  }
  return JSON.parse((await readAnswer(answer.body, MAX_LIST_BYTES)).toString('utf8')) as unknown;
}

export function startModelDates(options: ModelDatesOptions): ModelDates {
  const { members, catalogue, intervalMs } = options;
  /** Each upstream's latest answer. */
  const reported = new Map<string, Map<string, LearnedShutdown>>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const refresh = async (): Promise<void> => {
    await Promise.all(
      members.map(async (member) => {
        try {
          reported.set(member.id, shutdownsFrom(await listOf(member), catalogue));
        } catch (err) {
          options.onError?.(member.id, err instanceof Error ? err.message : 'failed');
        }
      }),
    );
    if (closed) return;
    const earliest = new Map<string, LearnedShutdown>();
    for (const dates of reported.values()) {
      for (const [name, date] of dates) {
        const known = earliest.get(name);
        if (!known || date.shutdownMs < known.shutdownMs) earliest.set(name, date);
      }
    }
    const changed = catalogue.learnShutdowns(earliest);
    if (changed.length > 0) options.onLearned?.(changed);
  };

  const schedule = (ms: number): void => {
    if (closed) return;
    timer = setTimeout(() => void refresh().finally(() => schedule(intervalMs)), ms);
    timer.unref();
  };
  if (intervalMs > 0) schedule(0);

  return {
    refresh,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}

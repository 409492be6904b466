// Issue 15: the retry rules of the upstream pool, as pure functions: which answers and failures
// are worth another attempt, what may be replayed, and how long to wait before the same upstream.
import { Readable } from 'node:stream';
import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { Health } from '../../src/upstream/health.js';
import { clientHead } from '../../src/upstream/headers.js';
import { backoffMs, isCreate, neverReceived, replayable, retryableError, retryableStatus, retryAfterMs } from '../../src/upstream/retry.js';

const head = (headers: Record<string, string>) => clientHead(Object.entries(headers).flatMap(([k, v]) => [Buffer.from(k), Buffer.from(v)]));
const POLICY = { maxAttempts: 3, deadlineMs: 10_000, baseBackoffMs: 100, maxBackoffMs: 1_000 };

describe('upstream retry rules', () => {
  it('retries 429 and 500/502/503/504 unless x-should-retry says no; x-should-retry: true retries any error', () => {
    for (const status of [429, 500, 502, 503, 504]) expect(retryableStatus(status, head({}))).toBe(true);
    for (const status of [200, 400, 401, 404, 501]) expect(retryableStatus(status, head({}))).toBe(false);
    expect(retryableStatus(503, head({ 'x-should-retry': 'false' }))).toBe(false);
    expect(retryableStatus(409, head({ 'x-should-retry': 'true' }))).toBe(true);
  });

  it('waits what the upstream names (retry-after-ms first, then retry-after), else full jitter capped at max_backoff_ms', () => {
    expect(retryAfterMs(head({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250);
    expect(retryAfterMs(head({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(head({}))).toBeUndefined();
    expect(backoffMs(POLICY, 1, 250, () => 0.5)).toBe(250);
    expect(backoffMs(POLICY, 1, undefined, () => 0.5)).toBe(50);
    expect(backoffMs(POLICY, 3, undefined, () => 0.999)).toBe(399);
    expect(backoffMs(POLICY, 10, undefined, () => 0.999)).toBe(999);
  });

  it('tells failures the upstream never received from those it may have', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(neverReceived(refused)).toBe(true);
    expect(neverReceived(new errors.ConnectTimeoutError())).toBe(true);
    expect(neverReceived(new errors.HeadersTimeoutError())).toBe(false);
    expect(retryableError(new errors.HeadersTimeoutError())).toBe(true);
    expect(retryableError(new errors.SocketError('other side closed'))).toBe(true);
    expect(retryableError(new Error('something else'))).toBe(false);
  });

  it('never repeats creating calls once received; replays bytes always, streams only when unread', () => {
    for (const path of ['/files', '/uploads', '/uploads/up_1/parts', '/batches', '/fine_tuning/jobs', '/batches?x=1']) expect(isCreate('POST', path)).toBe(true);
    for (const path of ['/batches/b_1/cancel', '/chat/completions', '/files/f_1']) expect(isCreate('POST', path)).toBe(false);
    expect(isCreate('GET', '/batches')).toBe(false);
    expect(replayable(Buffer.from('{}'))).toBe(true);
    const stream = Readable.from([Buffer.from('part')]);
    expect(replayable(stream)).toBe(true);
    stream.read();
    expect(replayable(stream)).toBe(false);
  });
});

describe('outlier ejection state', () => {
  it('ejects after the consecutive failures, doubles the cool-down up to the maximum, and starts over after recovery', () => {
    const health = new Health({ consecutiveFailures: 2, baseEjectionMs: 100, maxEjectionMs: 300 });
    expect(health.failed()).toBeUndefined();
    health.succeeded();
    expect(health.failed()).toBeUndefined();
    expect(health.failed()).toBe(100);
    expect(health.state).toBe('ejected');
    expect(health.eject()).toBe(200);
    expect(health.eject()).toBe(300);
    health.recovered();
    expect(health.state).toBe('healthy');
    health.failed();
    expect(health.failed()).toBe(100);
  });

  it('ejects on the failure percentage once the interval has its volume, without a failure streak, and counts again from each interval', () => {
    const health = new Health({ consecutiveFailures: 3, baseEjectionMs: 100, maxEjectionMs: 300, failurePercentage: 50, failurePercentageRequestVolume: 6 });
    for (let i = 0; i < 2; i++) {
      health.succeeded();
      expect(health.failed()).toBeUndefined();
    }
    health.nextInterval();
    for (let i = 0; i < 2; i++) {
      health.succeeded();
      expect(health.failed()).toBeUndefined();
    }
    health.succeeded();
    expect(health.failed()).toBe(100);
    health.recovered();
    // 1 in 3 failing stays below 50 %.
    for (let i = 0; i < 6; i++) {
      health.succeeded();
      health.succeeded();
      expect(health.failed()).toBeUndefined();
    }
  });
});

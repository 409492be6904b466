import { describe, expect, it } from 'vitest';
import { hundredths } from '../../src/util/hundredths.js';
import { requestLine } from '../../src/logging.js';
import { prng } from '../helpers/prng.js';

// The log line and Server-Timing used to write String(Math.round(ms * 100) / 100): the text must not change.
const before = (value: number): string => String(Math.round(value * 100) / 100);

describe('hundredths (milliseconds with two decimals, from integers)', () => {
  it('writes what String(Math.round(v * 100) / 100) wrote, for every hundredth up to 20 s and random values up to 6 hours', () => {
    for (let h = 0; h <= 2_000_000; h++) {
      const value = h / 100;
      if (hundredths(value) !== before(value)) expect(hundredths(value), String(value)).toBe(before(value));
    }
    const random = prng(19);
    for (let i = 0; i < 200_000; i++) {
      const value = random() * 21_600_000;
      if (hundredths(value) !== before(value)) expect(hundredths(value), String(value)).toBe(before(value));
    }
  });

  it('rounds half up at the third decimal, drops trailing zeros, and leaves the unusual to String', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [0.004, '0'],
      [0.005, '0.01'],
      [0.07, '0.07'],
      [0.7, '0.7'],
      [1.5, '1.5'],
      [2, '2'],
      [12.345678, '12.35'],
      [1234.5, '1234.5'],
      [-1.234, '-1.23'],
      [1e30, '1e+30'],
    ];
    for (const [value, text] of cases) expect(hundredths(value), String(value)).toBe(text);
  });

  it('the request line writes its durations that way', () => {
    const line = JSON.parse(
      requestLine({
        reqId: 'req_1',
        key_id: undefined,
        method: 'POST',
        endpoint: '/v1/chat/completions',
        model: undefined,
        status: 200,
        stream: undefined,
        stream_end: undefined,
        upstream_status: 200,
        upstream_ms: 3.14159,
        upstream: undefined,
        attempts: undefined,
        total_ms: 4.005,
        input_tokens: undefined,
        cached_tokens: undefined,
        output_tokens: undefined,
        tokens_source: undefined,
        cost_usd: undefined,
        cost_nano: undefined,
        cache: undefined,
        saved_usd: undefined,
        saved_nano: undefined,
        prompt_cache_key: undefined,
      }),
    ) as Record<string, unknown>;
    expect(line.upstream_ms).toBe(3.14);
    expect(line.total_ms).toBe(Number(before(4.005)));
  });
});

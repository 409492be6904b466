import { describe, expect, it } from 'vitest';
import { requestLine, type RequestLine } from '../../src/logging.js';

const base: RequestLine = {
  reqId: 'req_1',
  key_id: 'team-a',
  method: 'POST',
  endpoint: '/v1/chat/completions',
  model: 'gpt-4.1-nano',
  status: 200,
  stream: undefined,
  stream_end: undefined,
  upstream_status: 200,
  upstream_ms: 12.34,
  upstream: 'default',
  attempts: 1,
  total_ms: 13.5,
  input_tokens: 10,
  cached_tokens: 0,
  output_tokens: 5,
  tokens_source: 'reported',
  cost_usd: 0.000003,
  cost_nano: 3000,
  cache: undefined,
  saved_usd: undefined,
  saved_nano: undefined,
  prompt_cache_key: undefined,
};

describe('request log line', () => {
  it('is one JSON line in pino info format, without the fields that are not set', () => {
    const text = requestLine(base);
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    expect(parsed).toMatchObject({ level: 30, service: 'tollgate', msg: 'request', reqId: 'req_1', key_id: 'team-a', status: 200, upstream_ms: 12.34, total_ms: 13.5, tokens_source: 'reported', cost_usd: 0.000003, cost_nano: 3000 });
    expect(typeof parsed.time).toBe('number');
    expect(parsed).not.toHaveProperty('stream');
    expect(parsed).not.toHaveProperty('stream_end');
  });

  it('escapes what a client controls (the model name) so it cannot break or forge the line', () => {
    const model = 'x","status":999}\n{"level":60,"msg":"forged \u2028';
    const text = requestLine({ ...base, model, stream: true, stream_end: 'client_gone' });
    expect(text.indexOf('\n')).toBe(text.length - 1);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    expect(parsed.model).toBe(model);
    expect(parsed.status).toBe(200);
    expect(parsed.stream).toBe(true);
    expect(parsed.stream_end).toBe('client_gone');
  });
});

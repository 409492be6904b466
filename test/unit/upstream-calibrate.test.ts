import { describe, expect, it } from 'vitest';
import { limitFrom429 } from '../../src/upstream/calibrate.js';

const body = (error: Record<string, unknown>) => Buffer.from(JSON.stringify({ error }));
const RATE = 'Rate limit reached for gpt-4.1-nano in organization org-x on';

describe('the limit a 429 body names', () => {
  it("reads OpenAI's type and figures: what the provider had left of the limit hit", () => {
    expect(limitFrom429(body({ type: 'tokens', code: 'rate_limit_exceeded', message: `${RATE} tokens per min (TPM): Limit 30000, Used 29000, Requested 1500. Please try again in 1s.` }))).toEqual({ kind: 'tokens', remaining: 1000 });
    expect(limitFrom429(body({ type: 'requests', code: 'rate_limit_exceeded', message: `${RATE} requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.` }))).toEqual({ kind: 'requests', remaining: 0 });
    // A per-day limit: nothing left this minute either.
    expect(limitFrom429(body({ type: 'requests', message: `${RATE} requests per day (RPD): Limit 200, Used 100, Requested 1.` }))).toEqual({ kind: 'requests', remaining: 0 });
    // Used above the limit: nothing left, never a negative figure.
    expect(limitFrom429(body({ type: 'tokens', message: `${RATE} tokens per min (TPM): Limit 100, Used 130, Requested 5.` }))).toEqual({ kind: 'tokens', remaining: 0 });
    // A type without figures.
    expect(limitFrom429(body({ type: 'tokens', message: 'Too many tokens.' }))).toEqual({ kind: 'tokens', remaining: 0 });
  });

  it("reads Azure OpenAI's message", () => {
    expect(limitFrom429(body({ code: '429', message: 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds.' }))).toEqual({ kind: 'tokens', remaining: 0 });
    expect(limitFrom429(body({ code: '429', message: 'Requests to the Embeddings_Create Operation have exceeded call rate limit of your current OpenAI S0 pricing tier.' }))).toEqual({ kind: 'requests', remaining: 0 });
  });

  it('says nothing for one request larger than the limit, an exhausted quota, other 429s and bodies that are not JSON', () => {
    expect(limitFrom429(body({ type: 'tokens', message: 'Request too large for gpt-4.1-nano in organization org-x on tokens per min (TPM): Limit 30000, Requested 31538.' }))).toBeUndefined();
    expect(limitFrom429(body({ type: 'insufficient_quota', code: 'insufficient_quota', message: 'You exceeded your current quota, please check your plan and billing details.' }))).toBeUndefined();
    expect(limitFrom429(body({ type: 'server_error', message: 'Slow down' }))).toBeUndefined();
    expect(limitFrom429(Buffer.from('<html>Too Many Requests</html>'))).toBeUndefined();
    expect(limitFrom429(Buffer.from('null'))).toBeUndefined();
  });
});

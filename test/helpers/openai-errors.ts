// Shared assertions for tests of OpenAI-shaped error answers.
import { expect } from 'vitest';
import type { TestGateway } from './gateway.js';

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  text: string;
  body: ErrorEnvelope;
}

/** POST raw bytes (or a JSON value) with global fetch and read the answer as JSON. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: JSON.parse(text) as ErrorEnvelope };
}

/** Exactly OpenAI's envelope: `{error:{message,type,param,code}}` and nothing else. */
export function expectEnvelope(body: unknown): ErrorEnvelope['error'] {
  expect(body).toBeTypeOf('object');
  expect(Object.keys(body as object)).toEqual(['error']);
  const error = (body as ErrorEnvelope).error;
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(error.message).toBeTypeOf('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(error.type).toBeTypeOf('string');
  for (const field of [error.param, error.code]) expect(field === null || typeof field === 'string').toBe(true);
  return error;
}

/** The gateway keeps serving: one ordinary chat completion through it succeeds. */
export async function expectStillServing(gateway: TestGateway): Promise<void> {
  const completion = await gateway.client().chat.completions.create({
    model: 'gpt-4.1-nano',
    messages: [{ role: 'user', content: 'still there?' }],
  });
  expect(completion.object).toBe('chat.completion');
  expect(completion.choices[0]?.message.content).toBeTruthy();
}

/**
 * Benchmark scenarios (pure data). To add one, append to SCENARIOS; use
 * `targets` to restrict it to some targets (e.g. a tollgate variant with a
 * Redis-backed limiter registered in run.ts).
 */
import type { Scenario } from './load.js';

const CHAT_BODY = {
  model: 'gpt-4.1-nano',
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Say hello' },
  ],
  max_tokens: 64,
};

export const SCENARIOS: Scenario[] = [
  {
    id: 'chat',
    name: 'chat non-stream',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(CHAT_BODY),
    isStream: false,
  },
  {
    id: 'chat-stream',
    name: 'chat stream',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'x-fake-chunks': '20' },
    body: JSON.stringify({ ...CHAT_BODY, stream: true }),
    isStream: true,
  },
];

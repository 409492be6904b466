import type { ModelPricesNano } from '../config/catalogue.js';
import { costOf } from '../usage/cost.js';
import { replayStream } from './replay.js';
import type { CachedAnswer } from './store.js';

/** A stored answer in the form this request wants: the JSON bytes, or the stream replayed from them. */
export interface RenderedHit {
  readonly body: Buffer;
  readonly contentType: string;
  /** What the answer cost when it was made, at today's catalogue prices: what this hit saved. */
  readonly savedNano: number;
}

/** undefined when the stored answer cannot be replayed (then the request goes upstream as a miss). */
export function renderHit(answer: CachedAnswer, stream: boolean, body: Record<string, unknown>, prices: ModelPricesNano | undefined): RenderedHit | undefined {
  const savedNano = costOf(prices, answer.usage).total;
  if (!stream) return { body: answer.body, contentType: 'application/json', savedNano };
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const options = body.stream_options as Record<string, unknown> | null | undefined;
  const replayed = replayStream(answer.shape, parsed as Record<string, unknown>, options?.include_usage === true);
  return replayed && { body: replayed, contentType: 'text/event-stream; charset=utf-8', savedNano };
}

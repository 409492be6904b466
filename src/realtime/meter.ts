import type { ModelInfo } from '../config/catalogue.js';
import type { RealtimeTokens, Usage } from '../usage/extract.js';

/**
 * What a realtime conversation holds so far, estimated for the reservation of its next response:
 * the last response's reported input + output (the conversation the model saw, plus what it said),
 * plus what the client added since (text at chars-per-token, audio at bytes-per-token), capped at
 * the model's context window (the upstream truncates older turns beyond it).
 */
export interface ConversationMeter {
  addText(chars: number): void;
  /** `base64Chars`: the length of an `input_audio_buffer.append`'s `audio`. */
  addAudio(base64Chars: number): void;
  /** A response's reported usage: the conversation is now at least this large. */
  answered(usage: Usage): void;
  /** Estimated input tokens of the next response. */
  estimate(): number;
}

export function createMeter(model: ModelInfo | undefined, charsPerToken: number, audioBytesPerToken: number): ConversationMeter {
  let reported = 0;
  let chars = 0;
  let audioBytes = 0;
  return {
    addText(n) {
      chars += n;
    },
    addAudio(base64Chars) {
      audioBytes += Math.floor((base64Chars * 3) / 4);
    },
    answered(usage) {
      reported = usage.inputTokens + usage.outputTokens;
      chars = 0;
      audioBytes = 0;
    },
    estimate() {
      const tokens = reported + Math.ceil(chars / charsPerToken) + Math.ceil(audioBytes / audioBytesPerToken);
      const window = model?.contextWindow;
      return window === undefined ? tokens : Math.min(tokens, window);
    },
  };
}

/** Output tokens estimated from the bytes of a response's events relayed before it was cut. */
export function outputEstimate(relayedBytes: number, charsPerToken: number, audioBytesPerToken: number): number {
  // Deltas are base64 audio or text; either way this errs high, as a reservation should.
  return Math.ceil(Math.max(relayedBytes / charsPerToken, (relayedBytes * 3) / 4 / audioBytesPerToken));
}

function int(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.trunc(value) : 0;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A realtime `response.usage`, with its split by modality (OpenAI: input_token_details, output_token_details). */
export function readRealtimeUsage(usage: unknown): Usage | undefined {
  const u = record(usage);
  if (!u) return undefined;
  const inDetails = record(u.input_token_details);
  const cachedDetails = record(inDetails?.cached_tokens_details);
  const outDetails = record(u.output_token_details);
  const inputTokens = int(u.input_tokens);
  const outputTokens = int(u.output_tokens);
  const realtime: RealtimeTokens = {
    textIn: int(inDetails?.text_tokens),
    audioIn: int(inDetails?.audio_tokens),
    imageIn: int(inDetails?.image_tokens),
    cachedText: int(cachedDetails?.text_tokens),
    cachedAudio: int(cachedDetails?.audio_tokens),
    cachedImage: int(cachedDetails?.image_tokens),
    textOut: int(outDetails?.text_tokens),
    audioOut: int(outDetails?.audio_tokens),
  };
  const splitIn = realtime.textIn + realtime.audioIn + realtime.imageIn;
  const splitOut = realtime.textOut + realtime.audioOut;
  // A usage whose split does not add up is priced without it (at the dearest modality): never below cost.
  const consistent = splitIn === inputTokens && splitOut === outputTokens;
  return { inputTokens, cachedTokens: int(inDetails?.cached_tokens), outputTokens, ...(consistent ? { realtime } : {}) };
}

/**
 * The output cap of one `response.create`: its `max_output_tokens`, else the session's
 * (`max_output_tokens`, beta `max_response_output_tokens`), else the configured default; `inf`
 * and anything above the model's maximum count as the model's maximum.
 */
export function outputCap(requested: unknown, session: unknown, model: ModelInfo | undefined, defaultCap: number): number {
  const max = model?.maxOutputTokens;
  const pick = (value: unknown): number | undefined => {
    if (value === 'inf') return max ?? defaultCap;
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return max === undefined ? value : Math.min(value, max);
    return undefined;
  };
  return pick(requested) ?? pick(session) ?? (max === undefined ? defaultCap : Math.min(defaultCap, max));
}

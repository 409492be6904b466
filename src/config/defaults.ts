/**
 * Built-in defaults: the model catalogue and OpenAI's usage-tier table for gpt-4.1-nano.
 * This is data, not code. Operators extend or override it from the config file
 * (entries merge by name), so a successor model is one config entry away.
 */

export const TIER_NAMES = ['free', 'tier-1', 'tier-2', 'tier-3', 'tier-4', 'tier-5'] as const;
export type TierName = (typeof TIER_NAMES)[number];

/** Per-minute / per-day figures of one tier. `null` means "no limit of that kind". */
export interface TierLimits {
  rpm: number | null;
  rpd: number | null;
  tpm: number | null;
  batch_queue_tokens: number | null;
}

export const DEFAULT_TIERS: Record<TierName, TierLimits> = {
  free: { rpm: 3, rpd: 200, tpm: 40_000, batch_queue_tokens: null },
  'tier-1': { rpm: 500, rpd: 10_000, tpm: 200_000, batch_queue_tokens: 2_000_000 },
  'tier-2': { rpm: 5_000, rpd: null, tpm: 2_000_000, batch_queue_tokens: 20_000_000 },
  'tier-3': { rpm: 5_000, rpd: null, tpm: 4_000_000, batch_queue_tokens: 40_000_000 },
  'tier-4': { rpm: 10_000, rpd: null, tpm: 10_000_000, batch_queue_tokens: 1_000_000_000 },
  'tier-5': { rpm: 30_000, rpd: null, tpm: 150_000_000, batch_queue_tokens: 15_000_000_000 },
};

/** Prices in US dollars per 1M tokens, as OpenAI publishes them. */
export interface ModelPrices {
  input: number;
  cached_input?: number | undefined;
  output?: number | undefined;
  batch_input?: number | undefined;
  batch_output?: number | undefined;
  /** Realtime models: audio and image input (cached by modality) and audio output; text uses the fields above. */
  audio_input?: number | undefined;
  cached_audio_input?: number | undefined;
  image_input?: number | undefined;
  cached_image_input?: number | undefined;
  audio_output?: number | undefined;
}

export interface ModelEntryInput {
  name: string;
  aliases?: string[];
  context_window?: number | undefined;
  max_output_tokens?: number | undefined;
  price_per_1m?: ModelPrices | undefined;
  /** Forward requests for this name upstream as another model (rewrites `model` in the body). */
  route_to?: string | undefined;
}

export const DEFAULT_MODELS: ModelEntryInput[] = [
  {
    name: 'gpt-4.1-nano',
    aliases: ['gpt-4.1-nano-2025-04-14'],
    context_window: 1_047_576,
    max_output_tokens: 32_768,
    price_per_1m: { input: 0.1, cached_input: 0.025, output: 0.4, batch_input: 0.05, batch_output: 0.2 },
  },
  // Models that the other endpoints of the catalogue name. They are known (so the default
  // `unknown_models: reject` policy admits them); prices where OpenAI bills per token.
  { name: 'text-embedding-3-small', price_per_1m: { input: 0.02, batch_input: 0.01 } },
  { name: 'text-embedding-3-large', price_per_1m: { input: 0.13, batch_input: 0.065 } },
  { name: 'text-embedding-ada-002', price_per_1m: { input: 0.1, batch_input: 0.05 } },
  { name: 'omni-moderation-latest', aliases: ['omni-moderation-2024-09-26'], price_per_1m: { input: 0 } },
  { name: 'text-moderation-latest', price_per_1m: { input: 0 } },
  // Realtime models (/v1/realtime): text, audio and image tokens priced apart (OpenAI's model pages).
  {
    name: 'gpt-realtime',
    aliases: ['gpt-realtime-2025-08-28'],
    context_window: 32_000,
    max_output_tokens: 4_096,
    price_per_1m: { input: 4, cached_input: 0.4, output: 16, audio_input: 32, cached_audio_input: 0.4, audio_output: 64, image_input: 5, cached_image_input: 0.5 },
  },
  {
    name: 'gpt-realtime-mini',
    aliases: ['gpt-realtime-mini-2025-10-06'],
    context_window: 32_000,
    max_output_tokens: 4_096,
    price_per_1m: { input: 0.6, cached_input: 0.06, output: 2.4, audio_input: 10, cached_audio_input: 0.3, audio_output: 20, image_input: 0.8, cached_image_input: 0.08 },
  },
  {
    name: 'gpt-4o-realtime-preview',
    aliases: ['gpt-4o-realtime-preview-2024-12-17', 'gpt-4o-realtime-preview-2025-06-03'],
    context_window: 32_000,
    max_output_tokens: 4_096,
    price_per_1m: { input: 5, cached_input: 2.5, output: 20, audio_input: 40, cached_audio_input: 2.5, audio_output: 80 },
  },
  {
    name: 'gpt-4o-mini-realtime-preview',
    aliases: ['gpt-4o-mini-realtime-preview-2024-12-17'],
    context_window: 16_000,
    max_output_tokens: 4_096,
    price_per_1m: { input: 0.6, cached_input: 0.3, output: 2.4, audio_input: 10, cached_audio_input: 0.3, audio_output: 20 },
  },
  { name: 'gpt-image-1' },
  { name: 'dall-e-3' },
  { name: 'dall-e-2' },
  { name: 'tts-1' },
  { name: 'tts-1-hd' },
  { name: 'gpt-4o-mini-tts' },
  { name: 'whisper-1' },
  { name: 'gpt-4o-mini-transcribe' },
  { name: 'gpt-4o-transcribe' },
  { name: 'sora-2' },
  { name: 'sora-2-pro' },
];

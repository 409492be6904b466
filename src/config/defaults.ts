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

/** Prices of models billed by another unit than tokens, in US dollars (src/usage/units.ts applies them). */
export interface UnitPrices {
  /** Per image by `quality:size` (dall-e-2, dall-e-3). */
  per_image?: Record<string, number> | undefined;
  /** Token-priced media models by modality, per 1M tokens (gpt-image-1, gpt-4o-mini-tts, gpt-4o-transcribe). */
  tokens_per_1m?: Partial<Record<ModalTokenType, number>> | undefined;
  /** Output tokens of one image by `quality:size`, reserved per image (gpt-image-1). */
  image_output_tokens?: Record<string, number> | undefined;
  /** Per 1M characters of speech input (tts-1, tts-1-hd). */
  per_1m_characters?: number | undefined;
  /** Audio output tokens reserved per input character (gpt-4o-mini-tts). */
  audio_tokens_per_character?: number | undefined;
  /** Per minute of audio (whisper-1; the reservation rate of token-priced transcription models). */
  per_minute?: number | undefined;
  /** Bytes of uploaded audio per second assumed for the reservation (default 4000: 32 kbps). */
  audio_bytes_per_second?: number | undefined;
  /** Per second of video by `size` (sora-2, sora-2-pro). */
  per_second?: Record<string, number> | undefined;
}

/** Code-interpreter containers: US dollars per container by memory limit (OpenAI's pricing page). */
/** US dollars per built-in tool call a Responses answer reports (OpenAI's list prices: $10 / 1k web searches, $2.50 / 1k file searches). */
export const DEFAULT_TOOL_CALL_PRICES = { web_search: 0.01, file_search: 0.0025 } as const;

export const DEFAULT_CONTAINER_PRICES: Record<string, number> = { '1g': 0.03, '4g': 0.12, '16g': 0.48, '64g': 1.92 };

export const MODAL_TOKEN_TYPES = ['text_input', 'cached_text_input', 'image_input', 'cached_image_input', 'audio_input', 'text_output', 'image_output', 'audio_output'] as const;
export type ModalTokenType = (typeof MODAL_TOKEN_TYPES)[number];

export interface ModelEntryInput {
  name: string;
  aliases?: string[];
  context_window?: number | undefined;
  max_output_tokens?: number | undefined;
  price_per_1m?: ModelPrices | undefined;
  unit_prices?: UnitPrices | undefined;
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
  // Images, speech, transcription and video: billed per unit (OpenAI's pricing page; docs/pricing-units.md).
  {
    name: 'gpt-image-1',
    unit_prices: {
      tokens_per_1m: { text_input: 5, cached_text_input: 1.25, image_input: 10, cached_image_input: 2.5, image_output: 40 },
      image_output_tokens: {
        'low:1024x1024': 272,
        'low:1024x1536': 408,
        'low:1536x1024': 400,
        'medium:1024x1024': 1056,
        'medium:1024x1536': 1584,
        'medium:1536x1024': 1568,
        'high:1024x1024': 4160,
        'high:1024x1536': 6240,
        'high:1536x1024': 6208,
      },
    },
  },
  {
    name: 'dall-e-3',
    unit_prices: { per_image: { 'standard:1024x1024': 0.04, 'standard:1024x1792': 0.08, 'standard:1792x1024': 0.08, 'hd:1024x1024': 0.08, 'hd:1024x1792': 0.12, 'hd:1792x1024': 0.12 } },
  },
  { name: 'dall-e-2', unit_prices: { per_image: { 'standard:256x256': 0.016, 'standard:512x512': 0.018, 'standard:1024x1024': 0.02 } } },
  { name: 'tts-1', unit_prices: { per_1m_characters: 15 } },
  { name: 'tts-1-hd', unit_prices: { per_1m_characters: 30 } },
  { name: 'gpt-4o-mini-tts', unit_prices: { tokens_per_1m: { text_input: 0.6, audio_output: 12 }, audio_tokens_per_character: 2 } },
  { name: 'whisper-1', unit_prices: { per_minute: 0.006 } },
  { name: 'gpt-4o-mini-transcribe', unit_prices: { tokens_per_1m: { text_input: 1.25, audio_input: 3, text_output: 5 }, per_minute: 0.003 } },
  { name: 'gpt-4o-transcribe', unit_prices: { tokens_per_1m: { text_input: 2.5, audio_input: 6, text_output: 10 }, per_minute: 0.006 } },
  { name: 'sora-2', unit_prices: { per_second: { '720x1280': 0.1, '1280x720': 0.1 } } },
  { name: 'sora-2-pro', unit_prices: { per_second: { '720x1280': 0.3, '1280x720': 0.3, '1024x1792': 0.5, '1792x1024': 0.5 } } },
];

/**
 * The cheap token estimate: characters / chars_per_token over the text that reaches the model.
 * It walks only the fields that become prompt tokens (messages, input, prompt, instructions,
 * tools, functions, the structured-output schema) and skips binary payloads (image, audio and
 * file data), which OpenAI bills by other rules. No tokenizer runs here.
 */

/** Fields holding conversation content: binary payloads inside them are skipped. */
const CONTENT_FIELDS = ['messages', 'input', 'prompt', 'suffix', 'instructions'] as const;
/** Fields holding definitions (tools, schemas): every key and string counts. */
const DEFINITION_FIELDS = ['tools', 'functions', 'response_format', 'text'] as const;
const PROMPT_FIELDS = [...CONTENT_FIELDS, ...DEFINITION_FIELDS] as const;
const CONTENT = new Set<string>(CONTENT_FIELDS);

/** Keys whose string values in content parts are binary payloads or references, not text the model reads. */
const BINARY_KEYS = new Set(['image_url', 'file_data', 'data', 'url', 'file_id', 'image', 'audio', 'input_audio']);
const NOTHING_SKIPPED = new Set<string>();

function countChars(value: unknown, depth: number, skipped: ReadonlySet<string>): number {
  if (typeof value === 'string') return value.length;
  if (depth > 64 || value === null || typeof value !== 'object') return 0;
  let total = 0;
  if (Array.isArray(value)) {
    for (const item of value) total += countChars(item, depth + 1, skipped);
    return total;
  }
  for (const key in value) {
    if (skipped.has(key)) continue;
    total += key.length + countChars((value as Record<string, unknown>)[key], depth + 1, skipped);
  }
  return total;
}

/** Characters of model-visible text in a request body. */
export function promptChars(body: Readonly<Record<string, unknown>>): number {
  let total = 0;
  for (const field of PROMPT_FIELDS) {
    const value = body[field];
    if (value !== undefined) total += countChars(value, 0, CONTENT.has(field) ? BINARY_KEYS : NOTHING_SKIPPED);
  }
  return total;
}

export function estimateTokens(chars: number, charsPerToken: number): number {
  return Math.ceil(chars / charsPerToken);
}

/**
 * The model-visible text itself, in pieces (joined by newlines it is what the exact count reads;
 * only ever built near a limit). Left unjoined: the pieces go to the tokenizer's worker as they are.
 */
export function promptParts(body: Readonly<Record<string, unknown>>): string[] {
  const parts: string[] = [];
  const collect = (value: unknown, depth: number, skipped: ReadonlySet<string>): void => {
    if (typeof value === 'string') parts.push(value);
    else if (depth <= 64 && value !== null && typeof value === 'object') {
      if (Array.isArray(value)) for (const item of value) collect(item, depth + 1, skipped);
      else
        for (const key in value) {
          if (skipped.has(key)) continue;
          parts.push(key);
          collect((value as Record<string, unknown>)[key], depth + 1, skipped);
        }
    }
  };
  for (const field of PROMPT_FIELDS) {
    if (body[field] !== undefined) collect(body[field], 0, CONTENT.has(field) ? BINARY_KEYS : NOTHING_SKIPPED);
  }
  return parts;
}

/** The model-visible text itself, joined. */
export function promptText(body: Readonly<Record<string, unknown>>): string {
  return promptParts(body).join('\n');
}

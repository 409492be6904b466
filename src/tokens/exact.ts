/**
 * Exact token counts with the o200k_base tokenizer (gpt-4.1 family). Loaded on first use only:
 * the tokenizer's tables cost memory and start-up time, and most requests never need it.
 */

type Counter = (text: string) => number;
let loading: Promise<Counter> | undefined;

export function loadTokenizer(): Promise<Counter> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((mod) => (text: string) => mod.countTokens(text));
  return loading;
}

export async function countTokensExactly(text: string): Promise<number> {
  const count = await loadTokenizer();
  return count(text);
}

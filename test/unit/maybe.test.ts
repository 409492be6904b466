import { describe, expect, it } from 'vitest';
import { attempt, chain, detach, ignoreValue } from '../../src/util/maybe.js';

describe('Maybe helpers: one path for a value now or later, one error path for a throw or a rejection', () => {
  it('chain continues at once with a plain value (no promise) and after a promise settles', async () => {
    expect(chain(2, (n) => n * 3)).toBe(6);
    const later = chain(Promise.resolve(2), (n) => n * 3);
    expect(later).toBeInstanceOf(Promise);
    await expect(later).resolves.toBe(6);
  });

  it('attempt sends a synchronous throw and a rejection to the same handler', async () => {
    const seen: string[] = [];
    const onError = (err: unknown): string => {
      seen.push((err as Error).message);
      return 'recovered';
    };
    expect(attempt(() => 'ok', onError)).toBe('ok');
    expect(
      attempt(() => {
        throw new Error('sync');
      }, onError),
    ).toBe('recovered');
    await expect(attempt(() => Promise.reject(new Error('async')), onError)).resolves.toBe('recovered');
    expect(seen).toEqual(['sync', 'async']);
  });

  it('attempt passes on what the handler throws, synchronously for a synchronous step', async () => {
    const rethrow = (err: unknown): never => {
      throw err;
    };
    expect(() =>
      attempt(() => {
        throw new Error('sync');
      }, rethrow),
    ).toThrow('sync');
    await expect(attempt(() => Promise.reject(new Error('async')), rethrow)).rejects.toThrow('async');
  });

  it('detach never throws or leaves an unhandled rejection, and reports both kinds of failure', async () => {
    const seen: string[] = [];
    const onError = (err: unknown): void => {
      seen.push((err as Error).message);
    };
    detach(() => {
      throw new Error('sync');
    }, onError);
    detach(() => Promise.reject(new Error('async')), onError);
    detach(() => 1, onError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['sync', 'async']);
  });

  it('ignoreValue is undefined at once for a value and a promise of undefined for a promise', async () => {
    expect(ignoreValue(5)).toBeUndefined();
    const later = ignoreValue(Promise.resolve(5));
    expect(later).toBeInstanceOf(Promise);
    await expect(later).resolves.toBeUndefined();
    await expect(ignoreValue(Promise.reject(new Error('passes on')))).rejects.toThrow('passes on');
  });
});

/** A value now, or later: the request path stays synchronous (no microtask) where no step waits. */
export type Maybe<T> = T | Promise<T>;

/** Continue with `value`: at once when it is a plain value, after it settles when it is a promise. */
export function chain<T, U>(value: Maybe<T>, next: (value: T) => Maybe<U>): Maybe<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/**
 * Run `step` with one error path: a synchronous throw and a rejection both reach `onError`, whose
 * result (or throw) is the outcome. A step that answers at once stays synchronous.
 */
export function attempt<T, U = T>(step: () => Maybe<T>, onError: (err: unknown) => Maybe<U>): Maybe<T | U> {
  let value: Maybe<T>;
  try {
    value = step();
  } catch (err) {
    return onError(err);
  }
  return value instanceof Promise ? value.catch(onError) : value;
}

/**
 * Start `step` for its side effect only: a synchronous throw and a rejection both reach `onError`
 * (which must not throw), and nothing waits for it.
 */
export function detach(step: () => Maybe<unknown>, onError: (err: unknown) => void): void {
  try {
    const value = step();
    if (value instanceof Promise) value.catch(onError);
  } catch (err) {
    onError(err);
  }
}

/** Drop a settled value: `undefined` at once, or when the promise settles (rejections pass on). */
export function ignoreValue(value: Maybe<unknown>): void | Promise<void> {
  if (value instanceof Promise) return value.then(NOTHING);
}

const NOTHING = (): undefined => undefined;

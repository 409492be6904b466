/** A value now, or later: the request path stays synchronous (no microtask) where no step waits. */
export type Maybe<T> = T | Promise<T>;

/** Continue with `value`: at once when it is a plain value, after it settles when it is a promise. */
export function chain<T, U>(value: Maybe<T>, next: (value: T) => Maybe<U>): Maybe<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

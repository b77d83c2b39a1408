import { ConfigError } from '../errors.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/**
 * Small checkers used by every `resolve...Options()` function. Each returns
 * the value when it is acceptable (or the default when it is `undefined`)
 * and throws a {@link ConfigError} naming the option otherwise.
 */

export function integer(
  option: string,
  value: unknown,
  fallback: number,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(option, rangeText('an integer', min, max), value);
  }
  return value;
}

export function number(
  option: string,
  value: unknown,
  fallback: number,
  {
    min = 0,
    max = Number.MAX_VALUE,
    exclusiveMin = false,
  }: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (exclusiveMin ? value <= min : value < min) ||
    value > max
  ) {
    const low = exclusiveMin ? `greater than ${min}` : `at least ${min}`;
    throw new ConfigError(
      option,
      `a finite number ${low}${max < Number.MAX_VALUE ? ` and at most ${max}` : ''}`,
      value,
    );
  }
  return value;
}

/**
 * The longest delay Node's timers honour: a longer one fires after 1 ms
 * (with a TimeoutOverflowWarning), so a duration that becomes a timer must
 * not exceed it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration in milliseconds: an integer from `min` to `max` (by default
 * {@link MAX_TIMER_MS}, since most durations become timers), or `Infinity`
 * where `allowInfinity` says so (no timer is set for it).
 */
export function duration(
  option: string,
  value: unknown,
  fallback: number,
  {
    min = 1,
    max = MAX_TIMER_MS,
    allowInfinity = false,
  }: { min?: number; max?: number; allowInfinity?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const upTo =
      max === MAX_TIMER_MS
        ? ` and at most ${MAX_TIMER_MS} (2^31-1, the longest timer Node runs)`
        : max < Number.MAX_SAFE_INTEGER
          ? ` and at most ${max}`
          : '';
    throw new ConfigError(
      option,
      `an integer number of milliseconds, at least ${min}${upTo}${allowInfinity ? ', or Infinity' : ''}`,
      value,
    );
  }
  return value;
}

export function boolean(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigError(option, 'a boolean', value);
  return value;
}

export function oneOf<T extends string>(
  option: string,
  value: unknown,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(option, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`, value);
  }
  return value as T;
}

export function nonEmptyString(option: string, value: unknown, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(option, 'a non-empty string', value);
  }
  return value;
}

export function optionalFunction<F>(option: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new ConfigError(option, 'a function', value);
  return value as F;
}

export function requiredFunction<F>(option: string, value: unknown): F {
  if (typeof value !== 'function') throw new ConfigError(option, 'a function', value);
  return value as F;
}

export function plainObject(option: string, value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(option, 'an object', value);
  }
  return value as Record<string, unknown>;
}

/** Rejects keys the option type does not know: a typo must not be silently ignored. */
export function knownKeys(
  option: string,
  value: Record<string, unknown>,
  keys: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      const path = option === '' ? key : `${option}.${key}`;
      throw new ConfigError(path, `no such option (known: ${keys.join(', ')})`, value[key]);
    }
  }
}

/** Cross-field rule: `low` must be strictly below `high`. */
export function below(lowOption: string, low: number, highOption: string, high: number): void {
  if (!(low < high)) {
    throw new ConfigError(lowOption, `a value below \`${highOption}\` (${high})`, low);
  }
}

function rangeText(kind: string, min: number, max: number): string {
  if (max === Number.MAX_SAFE_INTEGER) return `${kind} >= ${min}`;
  return `${kind} between ${min} and ${max}`;
}

/** A pino-shaped logger, or undefined. */
export function logger(option: string, value: unknown): Logger | undefined {
  if (value === undefined) return undefined;
  const ok =
    typeof value === 'object' &&
    value !== null &&
    ['debug', 'info', 'warn', 'error'].every(
      (m) => typeof (value as Record<string, unknown>)[m] === 'function',
    );
  if (!ok) {
    throw new ConfigError(
      option,
      'an object with debug, info, warn and error methods (pino-shaped)',
      value,
    );
  }
  return value as Logger;
}

/** An injected clock, or undefined. */
export function clock(option: string, value: unknown): Clock | undefined {
  if (value === undefined) return undefined;
  if (typeof (value as { now?: unknown } | null)?.now !== 'function') {
    throw new ConfigError(option, 'an object with a now() method', value);
  }
  return value as Clock;
}

/** An optional `AbortSignal` argument. */
export function signal(option: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  const s = value as Partial<AbortSignal> | null;
  if (
    typeof value !== 'object' ||
    s === null ||
    typeof s.aborted !== 'boolean' ||
    typeof s.addEventListener !== 'function' ||
    typeof s.removeEventListener !== 'function'
  ) {
    throw new ConfigError(option, 'an AbortSignal', value);
  }
  return value as AbortSignal;
}

/**
 * Rejects with `signal.reason` when `signal` aborts before `promise`
 * settles; otherwise settles as `promise` does. Leaves no listener behind.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as unknown);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as unknown);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/**
 * Brands that survive duplicate installs. `instanceof` compares prototypes,
 * so it fails when the package is loaded twice (once as ESM and once as
 * CommonJS, or at two versions in one tree). `Symbol.for` keys live in the
 * process-wide symbol registry, so every copy agrees on them: each branded
 * class marks its prototype with its own key, and its `Symbol.hasInstance`
 * accepts any object that carries that key.
 */

const PREFIX = 'kafkajs-backpressure.';
/** Static slot holding the brand key of the class itself (not inherited by user subclasses). */
const OWN_BRAND = Symbol.for(`${PREFIX}brand`);

type Branded = Record<symbol, unknown>;

/** The brand key of the class named `name`. */
export function brandKey(name: string): symbol {
  return Symbol.for(PREFIX + name);
}

/** Marks instances of `cls` (and of its subclasses) with the brand `name`. */
export function brand(cls: abstract new (...args: never[]) => unknown, name: string): void {
  const key = brandKey(name);
  Object.defineProperty(cls.prototype, key, { value: true });
  Object.defineProperty(cls, OWN_BRAND, { value: key });
}

/** True when `value` carries the brand under `key`, from whichever copy of the package. */
export function hasBrand(value: unknown, key: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Branded)[key] === true;
}

/**
 * `Symbol.hasInstance` of a branded class. The ordinary prototype check
 * first; then, for a class of this package (never a user's subclass of it,
 * whose instances must really be its own), the brand.
 */
export function isInstance(cls: object, value: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(cls, value)) return true;
  if (!Object.hasOwn(cls, OWN_BRAND)) return false;
  return hasBrand(value, (cls as Branded)[OWN_BRAND] as symbol);
}

/**
 * Shared settings for the hostile-input properties: thousands of cases per
 * property (VIRT_PROPERTY_RUNS overrides), and the seed printed on failure so
 * `VIRT_PROPERTY_SEED=... node --test FILE` replays the failing case.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';

const RUNS = Number(process.env['VIRT_PROPERTY_RUNS'] ?? '') || undefined;
const SEED = Number(process.env['VIRT_PROPERTY_SEED'] ?? '') || undefined;

export function params(numRuns: number): fc.Parameters<unknown> {
  const seed = SEED ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  return { numRuns: RUNS ?? numRuns, seed, verbose: 1 };
}

/** Runs a synchronous property; the failure message carries seed and counterexample. */
export function holds<T>(arb: fc.Arbitrary<T>, check: (value: T) => void, numRuns = 3000): void {
  fc.assert(fc.property(arb, check), params(numRuns) as fc.Parameters<[T]>);
}

export async function holdsAsync<T>(arb: fc.Arbitrary<T>, check: (value: T) => Promise<void>, numRuns = 300): Promise<void> {
  await fc.assert(fc.asyncProperty(arb, check), params(numRuns) as fc.Parameters<[T]>);
}

/**
 * The outcome every decoder must have: it returns, or it throws a VirtError
 * with one of the expected codes. Anything else (TypeError, RangeError, a
 * plain Error) is a crash waiting to happen in production.
 */
export function parsesOrTyped<R>(fn: () => R, codes: readonly VirtErrorCode[]): { ok: true; value: R } | { ok: false; code: VirtErrorCode } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    assert.ok(isVirtError(err), `expected a VirtError (${codes.join('|')}), got ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}, expected ${codes.join('|')}`);
    return { ok: false, code: err.code };
  }
}

/** Random bytes biased towards the edges decoders get wrong: lengths, zeros, 0xff. */
export const hostileBytes = (maxLength = 512): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength }),
    fc.array(fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x01, 0x28, 0x29, 0x22, 0x27, 0x5c), { maxLength }).map((a) => Uint8Array.from(a)),
  );

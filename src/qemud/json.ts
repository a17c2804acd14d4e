/**
 * BigInt-safe JSON for QMP. QEMU sends unsigned 64-bit counters (and the
 * 2^64-1 "unavailable" marker) that JSON.parse would silently round; integers
 * that are not safe doubles are kept as bigint using the reviver's source text
 * (V8's JSON.parse source access, on by default in Node 22).
 */
import { VirtError } from '../virt/errors.ts';

const U64_UNAVAILABLE = (1n << 64n) - 1n;

interface ReviverContext {
  source?: string;
}

function revive(_key: string, value: unknown, ctx?: ReviverContext): unknown {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && ctx?.source !== undefined && /^-?\d+$/.test(ctx.source)) {
    return BigInt(ctx.source);
  }
  return value;
}

/** No QMP reply nests deeper than a dozen levels; a deeper one is hostile or broken. */
export const QMP_MAX_DEPTH = 64;

/** Nesting depth of JSON text outside strings, stopping early past `limit`. */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Whether text opens more than `limit` objects and arrays in all (only then can it nest deeper); native scans only. */
function opensMoreThan(text: string, limit: number): boolean {
  let n = 0;
  for (const c of ['{', '[']) {
    for (let i = text.indexOf(c); i !== -1; i = text.indexOf(c, i + 1)) if (++n > limit) return true;
  }
  return false;
}

/**
 * A run of 16 digits: the only way an integer beyond 2^53 (16 digits) can
 * appear. Without one, every integer in the text is a safe double and the
 * reviver (several times slower than JSON.parse alone) has nothing to do.
 */
const LONG_DIGITS = /\d{16}/;

/**
 * Parses QMP text; integers beyond 2^53 come back as bigint. Nesting beyond
 * QMP_MAX_DEPTH is refused before parsing, so no later walk of the value
 * (reviver, error preview) can exhaust the stack.
 */
export function parseQmpJson(text: string): unknown {
  if (opensMoreThan(text, QMP_MAX_DEPTH) && jsonDepthExceeds(text, QMP_MAX_DEPTH)) throw new VirtError('VIRT_ERR_RPC', `QMP message nested deeper than ${QMP_MAX_DEPTH} levels`);
  return LONG_DIGITS.test(text) ? JSON.parse(text, revive) : JSON.parse(text);
}

/**
 * A QMP counter as a number in base units, or undefined when absent,
 * malformed, negative or the 2^64-1 "unavailable" marker. Values above 2^53
 * are converted to the nearest double (the typed readings are numbers).
 */
export function u64(value: unknown): number | undefined {
  if (typeof value === 'bigint') {
    // Past 2^64-1 is no u64 at all (a hostile or broken peer), not a huge counter.
    if (value >= U64_UNAVAILABLE || value < 0n) return undefined;
    return Number(value);
  }
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < 2 ** 64) return value;
  return undefined;
}

/** Exact decimal text of a counter (for tests and logs). */
export function u64Text(value: unknown): string | undefined {
  if (typeof value === 'bigint') return value >= U64_UNAVAILABLE || value < 0n ? undefined : value.toString();
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  return undefined;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

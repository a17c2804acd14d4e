/**
 * BigInt-safe JSON for QMP. QEMU sends unsigned 64-bit counters (and the
 * 2^64-1 "unavailable" marker) that JSON.parse would silently round; integers
 * that are not safe doubles are kept as bigint using the reviver's source text
 * (V8's JSON.parse source access, on by default in Node 22).
 */
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

/** Parses QMP text; integers beyond 2^53 come back as bigint. */
export function parseQmpJson(text: string): unknown {
  return JSON.parse(text, revive);
}

/**
 * A QMP counter as a number in base units, or undefined when absent,
 * malformed, negative or the 2^64-1 "unavailable" marker. Values above 2^53
 * are converted to the nearest double (the typed readings are numbers).
 */
export function u64(value: unknown): number | undefined {
  if (typeof value === 'bigint') {
    if (value === U64_UNAVAILABLE || value < 0n) return undefined;
    return Number(value);
  }
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  return undefined;
}

/** Exact decimal text of a counter (for tests and logs). */
export function u64Text(value: unknown): string | undefined {
  if (typeof value === 'bigint') return value === U64_UNAVAILABLE ? undefined : value.toString();
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  return undefined;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

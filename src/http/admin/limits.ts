import { TokenBucket } from '../auth/token-bucket.ts';

/**
 * Token buckets by key. Keys are principal names (bounded by the config) or
 * source addresses of failed authentications. Idle full buckets are
 * forgotten; buckets in use are never dropped wholesale (that would hand a
 * flooder, or a principal over its limit, a fresh burst): once `maxKeys`
 * busy keys are tracked, new keys share one overflow bucket.
 */
export class PrincipalRateLimiter {
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #maxKeys: number;
  #overflow: TokenBucket | undefined;

  constructor(intervalMs: number, burst: number, now: () => number = () => performance.now(), maxKeys = 10_000) {
    this.#intervalMs = intervalMs;
    this.#burst = burst;
    this.#now = now;
    this.#maxKeys = maxKeys;
  }

  /** Returns 0 when allowed, else the milliseconds to wait. An interval of 0 disables limiting. */
  take(key: string): number {
    if (this.#intervalMs === 0) return 0;
    const b = this.#bucket(key);
    return b.take() ? 0 : Math.max(1, b.waitMs());
  }

  /** Milliseconds until `key` could pass, without spending (0: it could now). */
  peek(key: string): number {
    if (this.#intervalMs === 0) return 0;
    const b = this.#buckets.get(key) ?? (this.#buckets.size >= this.#maxKeys ? this.#overflow : undefined);
    return b === undefined ? 0 : b.waitMs();
  }

  get size(): number {
    return this.#buckets.size;
  }

  #bucket(key: string): TokenBucket {
    let b = this.#buckets.get(key);
    if (b !== undefined) return b;
    if (this.#buckets.size >= this.#maxKeys) this.#prune();
    if (this.#buckets.size >= this.#maxKeys) {
      this.#overflow ??= new TokenBucket(this.#intervalMs, this.#burst, this.#now);
      return this.#overflow;
    }
    b = new TokenBucket(this.#intervalMs, this.#burst, this.#now);
    this.#buckets.set(key, b);
    return b;
  }

  #prune(): void {
    for (const [k, b] of this.#buckets) if (b.idle()) this.#buckets.delete(k);
  }
}

/** The key of a failed authentication's source: the IPv4 address, or the /64 of an IPv6 one. */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const a = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped !== null) return mapped[1] as string;
  if (!a.includes(':')) return a;
  const [head = '', tail = ''] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = a.includes('::') ? [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

/**
 * Failed-authentication limits: a bucket per source (address, or IPv6 /64)
 * and a global budget shared by all sources, so many addresses together
 * cannot guess faster than the global rate.
 */
export class FailedAuthLimiter {
  readonly #perSource: PrincipalRateLimiter;
  readonly #global: TokenBucket | undefined;

  constructor(perSource: { intervalMs: number; burst: number }, global: { intervalMs: number; burst: number }, now: () => number = () => performance.now(), maxKeys = 10_000) {
    this.#perSource = new PrincipalRateLimiter(perSource.intervalMs, perSource.burst, now, maxKeys);
    this.#global = global.intervalMs === 0 ? undefined : new TokenBucket(global.intervalMs, global.burst, now);
  }

  /** Returns 0 when this failure may be answered (401), else the milliseconds to wait (429). */
  take(address: string | undefined): number {
    const wait = this.#perSource.take(`peer:${sourceKey(address)}`);
    if (wait > 0) return wait;
    if (this.#global !== undefined && !this.#global.take()) return Math.max(1, this.#global.waitMs());
    return 0;
  }
}

/**
 * At most N state-changing operations in flight per domain. enter() is
 * synchronous, so two requests cannot both pass between check and count:
 * the second gets false (409), never a race in the driver.
 */
export class DomainGate {
  readonly #max: number;
  readonly #inFlight = new Map<string, number>();

  constructor(maxPerDomain: number) {
    this.#max = maxPerDomain;
  }

  enter(key: string): boolean {
    const n = this.#inFlight.get(key) ?? 0;
    if (n >= this.#max) return false;
    this.#inFlight.set(key, n + 1);
    return true;
  }

  leave(key: string): void {
    const n = this.#inFlight.get(key) ?? 0;
    if (n <= 1) this.#inFlight.delete(key);
    else this.#inFlight.set(key, n - 1);
  }

  inFlight(key: string): number {
    return this.#inFlight.get(key) ?? 0;
  }
}

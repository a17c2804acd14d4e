import { TokenBucket } from '../auth/token-bucket.ts';

/**
 * Per-principal token buckets. Keys are principal names (or "peer:ADDR" for
 * requests that failed authentication), so the map is bounded by the config
 * plus the peers seen; idle full buckets are forgotten.
 */
export class PrincipalRateLimiter {
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #maxKeys: number;

  constructor(intervalMs: number, burst: number, now: () => number = () => performance.now(), maxKeys = 10_000) {
    this.#intervalMs = intervalMs;
    this.#burst = burst;
    this.#now = now;
    this.#maxKeys = maxKeys;
  }

  /** Returns 0 when allowed, else the milliseconds to wait. An interval of 0 disables limiting. */
  take(key: string): number {
    if (this.#intervalMs === 0) return 0;
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#prune();
      b = new TokenBucket(this.#intervalMs, this.#burst, this.#now);
      this.#buckets.set(key, b);
    }
    return b.take() ? 0 : Math.max(1, b.waitMs());
  }

  #prune(): void {
    for (const [k, b] of this.#buckets) if (b.idle()) this.#buckets.delete(k);
    // Still full of busy keys (a flood of peers): start over rather than grow.
    if (this.#buckets.size >= this.#maxKeys) this.#buckets.clear();
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

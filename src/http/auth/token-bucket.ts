/**
 * A token bucket: `burst` tokens, one more every `intervalMs`. take() spends
 * one when available. The clock is injectable so tests need no sleeping.
 */
export class TokenBucket {
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(intervalMs: number, burst: number, now: () => number = () => performance.now()) {
    this.#intervalMs = intervalMs;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  take(): boolean {
    const t = this.#now();
    if (this.#intervalMs > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (t - this.#last) / this.#intervalMs);
    }
    this.#last = t;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until the next token (for Retry-After). */
  waitMs(): number {
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) * this.#intervalMs);
  }

  /** True when the bucket is full again (an idle entry that can be forgotten). */
  idle(): boolean {
    const t = this.#now();
    return this.#tokens + (t - this.#last) / this.#intervalMs >= this.#burst;
  }
}

import type { Logger } from '../util/logger.ts';

export interface FailureLogOptions {
  logger: Logger;
  /** First quiet period after a logged failure (doubles up to maxMs). */
  initialMs?: number;
  maxMs?: number;
  now?: () => number;
}

/**
 * Logs push failures with backoff: the first failure at once, then at most
 * one line per quiet period, which doubles (1 min, 2 min, ... 1 h) while the
 * endpoint stays down, each line counting what was suppressed. Recovery is
 * logged once. An unreachable collector therefore costs a few lines an hour.
 */
export class FailureLog {
  readonly #log: Logger;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #now: () => number;
  #failures = 0;
  #suppressed = 0;
  #nextLogAt = 0;
  #quietMs: number;

  constructor(opts: FailureLogOptions) {
    this.#log = opts.logger;
    this.#initialMs = opts.initialMs ?? 60_000;
    this.#maxMs = opts.maxMs ?? 3_600_000;
    this.#now = opts.now ?? Date.now;
    this.#quietMs = this.#initialMs;
  }

  /** Consecutive failures so far (0 while pushes succeed). */
  get failures(): number {
    return this.#failures;
  }

  failure(err: unknown): void {
    this.#failures++;
    const now = this.#now();
    if (this.#failures > 1 && now < this.#nextLogAt) {
      this.#suppressed++;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    this.#log.warn('OTLP push failed', {
      err: message,
      consecutive_failures: this.#failures,
      suppressed: this.#suppressed,
      next_report_in_s: Math.round(this.#quietMs / 1000),
    });
    this.#suppressed = 0;
    this.#nextLogAt = now + this.#quietMs;
    this.#quietMs = Math.min(this.#quietMs * 2, this.#maxMs);
  }

  success(): void {
    if (this.#failures > 0) this.#log.info('OTLP push recovered', { failed_pushes: this.#failures });
    this.#failures = 0;
    this.#suppressed = 0;
    this.#nextLogAt = 0;
    this.#quietMs = this.#initialMs;
  }
}

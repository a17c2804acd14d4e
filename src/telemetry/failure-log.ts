import type { Logger } from '../util/logger.ts';

export interface FailureLogOptions {
  logger: Logger;
  now?: () => number;
}

/**
 * Logs export failures once per outage: the first failure at warn, nothing
 * for the attempts after it (they are counted in
 * virt_otel_export_failures_total), and the recovery once at info with the
 * number of failed exports and how long the outage lasted.
 */
export class FailureLog {
  readonly #log: Logger;
  readonly #now: () => number;
  #failures = 0;
  #since = 0;

  constructor(opts: FailureLogOptions) {
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
  }

  /** Consecutive failures so far (0 while exports succeed). */
  get failures(): number {
    return this.#failures;
  }

  failure(err: unknown): void {
    this.#failures++;
    if (this.#failures > 1) return;
    this.#since = this.#now();
    const message = err instanceof Error ? err.message : String(err);
    this.#log.warn('OTLP push failed', { err: message });
  }

  success(): void {
    if (this.#failures > 0) this.#log.info('OTLP push recovered', { failed_pushes: this.#failures, outage_s: Math.round((this.#now() - this.#since) / 1000) });
    this.#failures = 0;
  }
}

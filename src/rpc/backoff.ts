import { VirtError, toVirtError, type VirtErrorCode } from '../virt/errors.ts';

export interface BackoffOptions {
  /** First wait after a failure, in ms. */
  initialMs: number;
  /** Longest wait, in ms. */
  maxMs: number;
}

/**
 * Exponential backoff between attempts to reach a backend: after a failure,
 * attempts are refused (with the last reason) until the wait runs out; each
 * further failure doubles the wait up to maxMs, a success resets it. Shared
 * by the RPC transport's reconnect and the xen driver's reopening of its
 * backends, so both back off alike.
 */
export class Backoff {
  readonly #o: BackoffOptions;
  #failures = 0;
  #retryAt = 0;
  #last: VirtError | null = null;

  constructor(o: BackoffOptions) {
    this.#o = o;
  }

  /** Failed attempts since the last success. */
  get failures(): number {
    return this.#failures;
  }

  get lastError(): VirtError | null {
    return this.#last;
  }

  /** Ms until the next attempt is allowed (0: now). */
  get waitMs(): number {
    return this.#last === null ? 0 : Math.max(0, this.#retryAt - Date.now());
  }

  /** Records a failed attempt; returns it as a VirtError (default code VIRT_ERR_NO_CONNECT). */
  failed(err: unknown): VirtError {
    const e = toVirtError(err, 'VIRT_ERR_NO_CONNECT');
    this.#last = e;
    this.#retryAt = Date.now() + Math.min(this.#o.maxMs, this.#o.initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return e;
  }

  succeeded(): void {
    this.#failures = 0;
    this.#retryAt = 0;
    this.#last = null;
  }

  /** Throws the last failure (named `what`, with the wait left; its code unless `code` is given) while the wait runs. */
  check(what: string, code?: VirtErrorCode): void {
    const wait = this.waitMs;
    const last = this.#last;
    if (wait > 0 && last !== null) {
      throw new VirtError(code ?? last.code, `${what}: ${last.message} (next reconnect attempt in ${wait} ms)`, { cause: last, ...(last.driver !== undefined ? { driver: last.driver } : {}) });
    }
  }
}

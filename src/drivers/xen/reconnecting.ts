/**
 * Keeps a backend connection usable across backend restarts: when the
 * current one is gone (virt-proxy child died, xenstored restarted), or was
 * never opened (the backend was absent when the driver opened), the next call
 * opens a new one. Concurrent callers share one open attempt. A failed open
 * surfaces as the caller's error (VIRT_ERR_NO_CONNECT) and starts a backoff:
 * until it runs out, calls fail at once with the last reason instead of
 * knocking on the backend again; each further failure doubles it (up to a cap),
 * a success resets it.
 */
import { Backoff } from '../../rpc/backoff.ts';
import { VirtError } from '../../virt/errors.ts';
import type { Logger } from '../../util/logger.ts';

export interface Closable {
  readonly closed: boolean;
  close(): Promise<void>;
}

export interface BackoffOptions {
  /** First wait after a failed open, in ms (default 1000). */
  initialMs?: number;
  /** Longest wait, in ms (default 60000). */
  maxMs?: number;
}

export class Reconnecting<T extends Closable> {
  readonly #open: () => Promise<T>;
  readonly #logger: Logger;
  readonly #what: string;
  readonly #backoff: Backoff;
  #current: T | undefined;
  #opening: Promise<T> | undefined;
  #shut = false;

  /** first: the connection opened already, or undefined with the error that kept it from opening. */
  constructor(first: T | undefined, open: () => Promise<T>, logger: Logger, what: string, opts: BackoffOptions & { firstError?: unknown } = {}) {
    this.#current = first;
    this.#open = open;
    this.#logger = logger;
    this.#what = what;
    this.#backoff = new Backoff({ initialMs: opts.initialMs ?? 1000, maxMs: opts.maxMs ?? 60_000 });
    if (first === undefined) this.#backoff.failed(opts.firstError ?? new VirtError('VIRT_ERR_NO_CONNECT', `${what} is not open`));
  }

  /** True while a connection is open (not necessarily alive). */
  get connected(): boolean {
    return this.#current !== undefined && !this.#current.closed;
  }

  /** Why the last open failed, while no connection is open. */
  get lastError(): VirtError | undefined {
    return this.connected ? undefined : (this.#backoff.lastError ?? undefined);
  }

  async get(): Promise<T> {
    if (this.#shut) throw new VirtError('VIRT_ERR_NO_CONNECT', `${this.#what} connection is closed`);
    const cur = this.#current;
    if (cur !== undefined && !cur.closed) return cur;
    if (this.#opening === undefined) this.#backoff.check(`${this.#what} is not connected`, 'VIRT_ERR_NO_CONNECT');
    this.#opening ??= (async () => {
      this.#logger.info('reconnecting', { backend: this.#what });
      await cur?.close().catch(() => undefined);
      this.#current = undefined;
      let next: T;
      try {
        next = await this.#open();
      } catch (err) {
        const e = this.#backoff.failed(err);
        this.#logger.debug('reconnect failed', { backend: this.#what, code: e.code, err: e.message, retry_in_ms: this.#backoff.waitMs });
        throw e.code === 'VIRT_ERR_NO_CONNECT' ? e : new VirtError('VIRT_ERR_NO_CONNECT', `${this.#what}: ${e.message}`, { cause: e, driver: e.driver });
      }
      if (this.#shut) {
        await next.close();
        throw new VirtError('VIRT_ERR_NO_CONNECT', `${this.#what} connection is closed`);
      }
      if (this.#backoff.failures > 0) this.#logger.info('backend connected', { backend: this.#what, after_failures: this.#backoff.failures });
      this.#backoff.succeeded();
      this.#current = next;
      return next;
    })().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async close(): Promise<void> {
    this.#shut = true;
    await this.#current?.close();
    this.#current = undefined;
  }
}

/**
 * Keeps a backend connection usable across backend restarts: when the
 * current one is gone (virt-proxy child died, xenstored restarted), the next
 * call opens a new one. Concurrent callers share one reopen attempt; a failed
 * reopen surfaces as the caller's error (VIRT_ERR_NO_CONNECT) and the next
 * call tries again.
 */
import { VirtError } from '../../virt/errors.ts';
import type { Logger } from '../../util/logger.ts';

export interface Closable {
  readonly closed: boolean;
  close(): Promise<void>;
}

export class Reconnecting<T extends Closable> {
  readonly #open: () => Promise<T>;
  readonly #logger: Logger;
  readonly #what: string;
  #current: T | undefined;
  #opening: Promise<T> | undefined;
  #shut = false;

  constructor(first: T, open: () => Promise<T>, logger: Logger, what: string) {
    this.#current = first;
    this.#open = open;
    this.#logger = logger;
    this.#what = what;
  }

  async get(): Promise<T> {
    if (this.#shut) throw new VirtError('VIRT_ERR_NO_CONNECT', `${this.#what} connection is closed`);
    const cur = this.#current;
    if (cur !== undefined && !cur.closed) return cur;
    this.#opening ??= (async () => {
      this.#logger.info('reconnecting', { backend: this.#what });
      await cur?.close().catch(() => undefined);
      const next = await this.#open();
      if (this.#shut) {
        await next.close();
        throw new VirtError('VIRT_ERR_NO_CONNECT', `${this.#what} connection is closed`);
      }
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

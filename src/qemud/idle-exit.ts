/**
 * Idle exit of an auto-started virt-qemud, as libvirt's modular daemons do
 * with --timeout: once it has run no domain and served no client for the
 * whole timeout, it stops. A virt-qemud started by hand or by its unit gets
 * no timeout (0) and never exits on its own.
 */
import type { Logger } from '../util/logger.ts';

export interface IdleWatch {
  stop(): void;
}

export interface IdleOptions {
  seconds: number;
  /** Running (or paused) domains. */
  activeDomains: () => number;
  /** Open client connections. */
  clients: () => number;
  onIdle: () => void;
  logger: Logger;
  /**
   * How often to look (default: a quarter of the timeout, at most 30 s, at
   * least 50 ms): the exit comes between one and one and a quarter
   * timeouts after the last activity, and a busy virt-qemud is not woken
   * every second to find that out.
   */
  checkEveryMs?: number;
}

export function watchIdle(o: IdleOptions): IdleWatch {
  if (!(o.seconds > 0)) return { stop: () => undefined };
  const limitMs = o.seconds * 1000;
  let idleSince: number | null = null;
  let fired = false;
  const timer = setInterval(
    () => {
      if (fired) return;
      const busy = o.activeDomains() > 0 || o.clients() > 0;
      if (busy) {
        idleSince = null;
        return;
      }
      idleSince ??= Date.now();
      if (Date.now() - idleSince >= limitMs) {
        fired = true;
        clearInterval(timer);
        o.logger.info('idle: no running domain and no client; exiting', { idleTimeoutSeconds: o.seconds });
        o.onIdle();
      }
    },
    o.checkEveryMs ?? Math.min(30_000, Math.max(50, limitMs / 4)),
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

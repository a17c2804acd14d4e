/**
 * Deadlines and durations: the one place that turns a timeout or an
 * AbortSignal into VIRT_ERR_OPERATION_TIMEOUT, and the one duration parser of
 * settings, flags and config files.
 */
import { VirtError, toVirtError } from '../virt/errors.ts';

/**
 * Calls onExpire once, when timeoutMs has passed (aborted false) or the signal
 * aborts first (aborted true); returns the function that disarms both. An
 * already-aborted signal does not fire: callers check `signal.aborted` first.
 */
export function armDeadline(timeoutMs: number, signal: AbortSignal | undefined, onExpire: (aborted: boolean) => void): () => void {
  const timer = setTimeout(() => onExpire(false), timeoutMs);
  const onAbort = (): void => onExpire(true);
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/**
 * Resolves with the promise's outcome or rejects with VIRT_ERR_OPERATION_TIMEOUT
 * when the signal aborts first. The loser is observed so a late rejection
 * never becomes an unhandled one.
 */
export function withDeadline<T>(promise: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what} did not finish before the deadline`));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what} did not finish before the deadline`));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : toVirtError(e));
      },
    );
  });
}

/** withDeadline over a timeout of `ms`, optionally cut short by the caller's signal too. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  const timeout = AbortSignal.timeout(ms);
  return withDeadline(promise, signal === undefined ? timeout : AbortSignal.any([timeout, signal]), what);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };

/**
 * Parses a duration into milliseconds: "250ms", "5s", "1.5s", "1m", a bare
 * number of seconds ("30"), or Prometheus' compound form ("1h30m", "0").
 * Throws VIRT_ERR_CONFIG naming the text otherwise.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  const single = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)?$/.exec(t);
  let ms: number | undefined;
  if (single !== null) ms = Number(single[1]) * (UNIT_MS[single[2] ?? 's'] as number);
  else if (/^(\d+(ms|s|m|h|d|w|y))+$/.test(t)) {
    ms = 0;
    for (const m of t.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  }
  if (ms === undefined || !Number.isSafeInteger(Math.round(ms))) {
    throw new VirtError('VIRT_ERR_CONFIG', `${JSON.stringify(text)} is not a duration like 500ms, 5s, 1m or 1h30m`);
  }
  return Math.round(ms);
}

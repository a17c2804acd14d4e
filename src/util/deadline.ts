import { VirtError } from '../virt/errors.ts';

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
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Parses "250ms", "5s", "1m", "1.5s" or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new Error(`${JSON.stringify(text)} is not a duration like 500ms, 5s or 1m`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}

/** withDeadline over a timeout of `ms`, optionally cut short by the caller's signal too. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  const timeout = AbortSignal.timeout(ms);
  return withDeadline(promise, signal === undefined ? timeout : AbortSignal.any([timeout, signal]), what);
}

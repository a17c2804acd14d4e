import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { VirtError } from '../../virt/errors.ts';

/**
 * bcrypt for basic auth: the well-kept `bcryptjs` implementation, run off the
 * event loop in worker threads, with a cache of successful verifications (as
 * Prometheus' exporter-toolkit has) and a bound on verifications in progress,
 * so wrong passwords cannot stall scrapes and the admin API. Hashes are made
 * with `htpasswd -nbB` (or any bcrypt tool) and put in the web config.
 * $2a$, $2b$ and $2y$ are accepted; $2x$ (the crypt_blowfish
 * sign-extension bug) is refused.
 */

const HASH_RE = /^\$(2[aby])\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;
const MIN_COST = 4;
const MAX_COST = 31;

export interface ParsedBcrypt {
  variant: '2a' | '2b' | '2y';
  cost: number;
  /** The 22-character encoded salt. */
  salt: string;
  /** The 31-character encoded digest, as in the hash string. */
  digest: string;
}

/** Parses a bcrypt hash string; null when it is not one that can be verified. */
export function parseBcrypt(hash: string): ParsedBcrypt | null {
  const m = HASH_RE.exec(hash);
  if (m === null) return null;
  const [, variant, costText, salt, digest] = m as unknown as [string, '2a' | '2b' | '2y', string, string, string];
  const cost = Number(costText);
  if (cost < MIN_COST || cost > MAX_COST) return null;
  return { variant, cost, salt, digest };
}

/** True when `password` matches the bcrypt `hash`; false for a malformed hash. Synchronous: never on a request path. */
export function verifyBcrypt(password: string, hash: string): boolean {
  if (parseBcrypt(hash) === null) return false;
  return bcrypt.compareSync(password, hash);
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', (m) => {
  let ok = false;
  try { ok = bcrypt.compareSync(m.password, m.hash); } catch { ok = false; }
  parentPort.postMessage({ id: m.id, ok });
});
`;

interface Pending {
  resolve: (ok: boolean) => void;
  reject: (err: Error) => void;
}

/** A small pool of worker threads running bcryptjs.compareSync. */
class BcryptPool {
  readonly #workers: { worker: Worker; busy: number }[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #size: number;
  #nextId = 1;
  #closed = false;

  constructor(size: number) {
    this.#size = Math.max(1, size);
  }

  #spawn(): { worker: Worker; busy: number } {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs: createRequire(import.meta.url).resolve('bcryptjs') } });
    const slot = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (m: { id: number; ok: boolean }) => {
      slot.busy--;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      p?.resolve(m.ok === true);
    });
    const fail = (err: Error): void => {
      const i = this.#workers.indexOf(slot);
      if (i >= 0) this.#workers.splice(i, 1);
      // Whatever this worker had is failed; the next verification spawns a new one.
      for (const [id, p] of this.#pending) {
        if ((p as Pending & { slot?: unknown }).slot === slot) {
          this.#pending.delete(id);
          p.reject(err);
        }
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new VirtError('VIRT_ERR_INTERNAL_ERROR', `bcrypt worker exited with code ${code}`)));
    this.#workers.push(slot);
    return slot;
  }

  compare(password: string, hash: string): Promise<boolean> {
    if (this.#closed) return Promise.reject(new VirtError('VIRT_ERR_INTERNAL_ERROR', 'bcrypt pool is closed'));
    let slot = this.#workers.reduce<{ worker: Worker; busy: number } | undefined>((best, w) => (best === undefined || w.busy < best.busy ? w : best), undefined);
    if (slot === undefined || (slot.busy > 0 && this.#workers.length < this.#size)) slot = this.#spawn();
    const id = this.#nextId++;
    slot.busy++;
    const s = slot;
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.set(id, Object.assign({ resolve, reject }, { slot: s }));
      s.worker.postMessage({ id, password, hash });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const ws = this.#workers.splice(0);
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

export type VerifyOutcome = 'ok' | 'denied' | 'busy';

export interface BcryptVerifierOptions {
  /** Worker threads (default 1: one core for hashing, the event loop keeps the other). */
  workers?: number;
  /** Verifications queued or running at once; beyond, the answer is 'busy' without hashing (default 8). */
  maxInFlight?: number;
  /** Successful verifications remembered (default 1024, least recently used evicted). */
  cacheEntries?: number;
}

/**
 * Verifies basic-auth credentials off the event loop. Successful ones are
 * remembered, keyed by a SHA-256 of user, password and hash: the password
 * itself is never stored, and a changed hash (rotation) misses the cache.
 */
export class BcryptVerifier {
  readonly #ok = new Map<string, true>();
  readonly #max: number;
  readonly #maxInFlight: number;
  readonly #pool: BcryptPool;
  #inFlight = 0;

  constructor(opts: BcryptVerifierOptions = {}) {
    this.#max = opts.cacheEntries ?? 1024;
    this.#maxInFlight = opts.maxInFlight ?? 8;
    this.#pool = new BcryptPool(opts.workers ?? 1);
  }

  #key(user: string, password: string, hash: string): string {
    return createHash('sha256').update(user).update('\0').update(password).update('\0').update(hash).digest('hex');
  }

  /** A cached success, answered without hashing; false means "not known", not "wrong". */
  cached(user: string, password: string, hash: string): boolean {
    const key = this.#key(user, password, hash);
    if (!this.#ok.has(key)) return false;
    this.#ok.delete(key);
    this.#ok.set(key, true);
    return true;
  }

  async verify(user: string, password: string, hash: string): Promise<VerifyOutcome> {
    if (this.cached(user, password, hash)) return 'ok';
    if (parseBcrypt(hash) === null) return 'denied';
    if (this.#inFlight >= this.#maxInFlight) return 'busy';
    this.#inFlight++;
    let ok: boolean;
    try {
      ok = await this.#pool.compare(password, hash);
    } finally {
      this.#inFlight--;
    }
    if (!ok) return 'denied';
    const key = this.#key(user, password, hash);
    // Bounded: the least recently used entry goes, never the whole cache.
    if (this.#ok.size >= this.#max) this.#ok.delete(this.#ok.keys().next().value as string);
    this.#ok.set(key, true);
    return 'ok';
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get size(): number {
    return this.#ok.size;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/**
 * The synchronous cache of earlier releases, kept for callers that verify
 * outside a request path (tools, tests): successful verifications only.
 */
export class BcryptVerifyCache {
  readonly #ok = new Map<string, true>();
  readonly #max: number;

  constructor(maxEntries = 1024) {
    this.#max = maxEntries;
  }

  verify(user: string, password: string, hash: string): boolean {
    const key = createHash('sha256').update(user).update('\0').update(password).update('\0').update(hash).digest('hex');
    if (this.#ok.has(key)) return true;
    const ok = verifyBcrypt(password, hash);
    if (ok) {
      if (this.#ok.size >= this.#max) this.#ok.delete(this.#ok.keys().next().value as string);
      this.#ok.set(key, true);
    }
    return ok;
  }

  get size(): number {
    return this.#ok.size;
  }
}

import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../../util/logger.ts';
import { VirtError } from '../../virt/errors.ts';

/** One audit line. Only names from the config and validated request parts: never a token or body. */
export interface AuditEntry {
  time: string;
  request_id: string;
  peer: string;
  principal: string | null;
  role: string | null;
  auth: string;
  method: string;
  route: string;
  action: string;
  /** The domain the request named (path segment or definition name), also when refused. */
  target: string | null;
  /** Name and UUID of the domain actually acted on (after lookup, or from the driver's answer). */
  domain: string | null;
  uuid: string | null;
  /** Save or restore file, relative to the save directory. */
  file: string | null;
  /**
   * `intent`: written (and fsynced) before a state-changing request reaches
   * the driver, with outcome `pending`; the request is refused when it cannot
   * be written. `done`: the outcome, one per request.
   */
  phase: 'intent' | 'done';
  outcome: string;
  /** The HTTP status; null on an intent line. */
  status: number | null;
  code: string | null;
  duration_ms: number;
}

/**
 * The append-only audit log: one JSON line per request, and before it an
 * intent line for each state-changing request. Lines are written in order
 * through one chain; state-changing requests wait for fdatasync before the
 * driver is called and before their response goes out, so a change is never
 * made unless its intent is on disk. A line that cannot be written whole (a
 * full or failing disk) is cut off again, so no partial line is left to spoil
 * the next.
 */
export class AuditLog {
  readonly file: string;
  readonly #fh: FileHandle;
  readonly #logger: Logger;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(file: string, fh: FileHandle, logger: Logger) {
    this.file = file;
    this.#fh = fh;
    this.#logger = logger;
  }

  static async open(file: string, logger: Logger): Promise<AuditLog> {
    try {
      return new AuditLog(file, await open(file, 'a', 0o600), logger);
    } catch (err) {
      throw new VirtError('VIRT_ERR_CONFIG', `cannot open the admin audit log ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  write(entry: AuditEntry, sync: boolean): Promise<void> {
    const line = JSON.stringify(entry) + '\n';
    const next = this.#chain.then(async () => {
      if (this.#closed) throw new VirtError('VIRT_ERR_OPERATION_FAILED', 'audit log is closed');
      const { size } = await this.#fh.stat();
      try {
        await this.#fh.appendFile(line, 'utf8');
        if (sync) await this.#fh.datasync();
      } catch (err) {
        // ENOSPC after part of the line, EIO at fdatasync: the line does not count, and is not left half there.
        await this.#fh.truncate(size).catch(() => undefined);
        throw err;
      }
    });
    // The chain itself never rejects, so one failed write does not block the next.
    this.#chain = next.catch((err: unknown) => {
      this.#logger.error('cannot write the admin audit log', { file: this.file, err });
    });
    return next;
  }

  async close(): Promise<void> {
    await this.#chain;
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }
}

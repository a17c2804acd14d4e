/**
 * On-disk state of virt-qemud. Every file is replaced atomically (temp file in
 * the same directory, fsync, rename, fsync of the directory), so a SIGKILL at
 * any instant leaves either the old or the new content, never a mix. Stray
 * temp files from a killed writer are removed at startup.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';
import { validateDefinition, type DomainDefinition } from './definition.ts';
import type { QemudPaths } from '../qemud-shared/paths.ts';

const TMP_PREFIX = '.tmp-';

const STORAGE_REASONS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'I/O error',
};

/** A failed write of virt-qemud's own state: the disk's fault, named as such (never an internal error). */
export function storageError(err: unknown, action: string, path: string): VirtError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const reason = STORAGE_REASONS[code] ?? (err as Error).message;
  return new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot ${action} ${path}: ${reason}${code === '' ? '' : ` (${code})`}; nothing was changed`, { cause: err });
}

export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  const tmp = join(dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}-${path.slice(dir.length + 1)}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', mode);
  } catch (err) {
    throw storageError(err, 'write', path);
  }
  try {
    const buf = Buffer.from(data, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    unlinkQuiet(tmp);
    throw storageError(err, 'write', path);
  }
  fsyncDir(dir);
}

/** Removes a state file; only "already gone" is not an error (a read-only disk must not look like success). */
export function unlinkDurable(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(err, 'remove', path);
  }
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Runtime record of a started QEMU, written before it is spawned and completed once it runs. */
export interface RuntimeRecord {
  name: string;
  uuid: string;
  id: number;
  /** 'starting' until the pid is known; a record left 'starting' is resolved at restart. */
  phase: 'starting' | 'running';
  pid?: number;
  pidStartTime?: string;
  pidFile: string;
  qmpSocket: string;
  consoleLog: string;
  accel: 'kvm' | 'tcg';
  startedAt: string;
  /** Files handed to the QEMU user, with their owners to put back. */
  labels?: { path: string; uid: number; gid: number }[];
  /** Private directory of an unprivileged QEMU (QMP socket, pid file, migration sockets). */
  privDir?: string;
}

export interface SaveRecord {
  file: string;
  /** State the domain was in when saved; restore brings it back in it. */
  state: 'running' | 'paused';
  savedAt: string;
}

export class Store {
  readonly paths: QemudPaths;
  readonly #logger: Logger;

  constructor(paths: QemudPaths, logger: Logger) {
    this.paths = paths;
    this.#logger = logger;
  }

  init(): void {
    mkdirSync(this.paths.runtimeDir, { recursive: true, mode: 0o755 });
    mkdirSync(this.paths.stateDir, { recursive: true, mode: 0o700 });
    for (const d of [this.paths.domainsDir, this.paths.savesDir, this.paths.runDir, this.paths.qmpDir, this.paths.logDir]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
    }
    for (const d of [this.paths.domainsDir, this.paths.savesDir, this.paths.runDir]) {
      for (const f of readdirSync(d)) if (f.startsWith(TMP_PREFIX)) unlinkQuiet(join(d, f));
    }
  }

  loadDefinitions(): DomainDefinition[] {
    const out: DomainDefinition[] = [];
    for (const f of readdirSync(this.paths.domainsDir)) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      try {
        const def = validateDefinition(JSON.parse(readFileSync(join(this.paths.domainsDir, f), 'utf8')) as unknown);
        if (`${def.name}.json` !== f) throw new VirtError('VIRT_ERR_XML_ERROR', `file name does not match domain name ${def.name}`);
        out.push(def);
      } catch (err) {
        this.#logger.error('ignoring unreadable domain definition', { file: f, err });
      }
    }
    return out;
  }

  saveDefinition(def: DomainDefinition): void {
    writeFileAtomic(join(this.paths.domainsDir, `${def.name}.json`), JSON.stringify(def, null, 2) + '\n');
  }

  removeDefinition(name: string): void {
    unlinkDurable(join(this.paths.domainsDir, `${name}.json`));
    fsyncDir(this.paths.domainsDir);
  }

  loadRuntime(name: string): RuntimeRecord | null {
    return this.#readJson<RuntimeRecord>(join(this.paths.runDir, `${name}.json`));
  }

  saveRuntime(rec: RuntimeRecord): void {
    writeFileAtomic(join(this.paths.runDir, `${rec.name}.json`), JSON.stringify(rec) + '\n');
  }

  removeRuntime(name: string): void {
    unlinkQuiet(join(this.paths.runDir, `${name}.json`));
  }

  loadSave(name: string): SaveRecord | null {
    return this.#readJson<SaveRecord>(join(this.paths.savesDir, `${name}.json`));
  }

  saveSave(name: string, rec: SaveRecord): void {
    writeFileAtomic(join(this.paths.savesDir, `${name}.json`), JSON.stringify(rec) + '\n');
  }

  removeSave(name: string): void {
    unlinkDurable(join(this.paths.savesDir, `${name}.json`));
  }

  #readJson<T>(path: string): T | null {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as T;
    } catch {
      return null;
    }
  }
}

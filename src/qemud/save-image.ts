/**
 * Save images: a header naming the domain and its definition, a MAC over it,
 * then the raw QEMU migration stream. The MAC (HMAC-SHA256) uses a key only
 * virt-qemud holds (STATE-DIR/save-image.key, 0600), so an image written by
 * anyone else, or a re-headed one, is refused before QEMU sees it.
 *
 * Files are opened relative to a directory file descriptor held open for the
 * whole operation (through /proc/self/fd/N/NAME, Node's stand-in for openat),
 * with O_NOFOLLOW, O_CREAT|O_EXCL for writing, and checked after the open
 * (regular file, owned by virt-qemud, one link): a symbolic link swapped in
 * after the admin layer looked is never followed, an existing file is never
 * truncated, and nothing but a file virt-qemud made is read back.
 *
 * Saving is a migration of the paused guest into a unix socket whose bytes
 * virt-qemud writes after the header; restoring starts QEMU with -incoming
 * and streams the image back into it. Both wait on query-migrate.
 */
import { closeSync, constants, fstatSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { withTimeout } from '../util/deadline.ts';
import { toVirtError, VirtError } from '../virt/errors.ts';
import type { QemudContext } from './context.ts';
import { validateDefinition, type DomainDefinition } from './definition.ts';
import { invalidState, type Domain } from './domain.ts';
import { receiveInto, sendFrom, type Receiver } from './migration-stream.ts';
import { apply, command } from './monitor.ts';
import { kill, launch, waitStopped } from './process.ts';
import { parseQueryMigrate, parseQueryStatus } from './qmp-parse.ts';
import { sleep } from './spawn.ts';
import { unlinkQuiet, type SaveRecord } from './store.ts';

const MAGIC = Buffer.from('VIRTQEMUD-SAVE2\n', 'latin1');
const OLD_MAGIC = Buffer.from('VIRTQEMUD-SAVE1\n', 'latin1');
const MAX_HEADER = 1024 * 1024;
const MAC_BYTES = 32;
const KEY_BYTES = 32;
export const SAVE_KEY_FILE = 'save-image.key';

export interface SaveHeader {
  definition: DomainDefinition;
  state: 'running' | 'paused';
  savedAt: string;
}

function refused(file: string, why: string, domain?: string): VirtError {
  return new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is refused: ${why}`, domain === undefined ? {} : { domain });
}

function myUid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Loads the MAC key from STATE-DIR, creating it (O_EXCL, 0600) on first use.
 * A key file that is not a regular file of ours with mode 0600 is refused.
 */
export function loadSaveKey(stateDir: string): Buffer {
  const path = join(stateDir, SAVE_KEY_FILE);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const key = randomBytes(KEY_BYTES);
    try {
      writeSync(fd, key);
    } finally {
      closeSync(fd);
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new VirtError('VIRT_ERR_CONFIG', `cannot create the save-image key ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw new VirtError('VIRT_ERR_CONFIG', `cannot open the save-image key ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== myUid() || (st.mode & 0o077) !== 0 || st.size !== KEY_BYTES) {
      throw new VirtError('VIRT_ERR_CONFIG', `save-image key ${path} must be a ${KEY_BYTES}-byte regular file owned by uid ${myUid()} with mode 0600`);
    }
    const key = Buffer.alloc(KEY_BYTES);
    if (readSync(fd, key, 0, KEY_BYTES, 0) !== KEY_BYTES) throw new VirtError('VIRT_ERR_CONFIG', `save-image key ${path} is truncated`);
    return key;
  } finally {
    closeSync(fd);
  }
}

/** A directory held open; files are named relative to it. */
class HeldDir {
  readonly fd: number;
  readonly path: string;
  constructor(path: string) {
    this.path = path;
    try {
      this.fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (err) {
      throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot open the directory of save image ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  /** The path that resolves NAME relative to the held descriptor. */
  at(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }
  close(): void {
    closeSync(this.fd);
  }
}

function checkName(file: string): string {
  const name = basename(file);
  if (!file.startsWith('/') || file.includes('\0') || file.split('/').includes('..') || name === '' || name === '.' ) {
    throw new VirtError('VIRT_ERR_INVALID_ARG', `save image path must be absolute without "..", got ${JSON.stringify(file)}`);
  }
  return name;
}

function checkOpened(file: string, st: Stats): void {
  if (!st.isFile()) throw refused(file, 'it is not a regular file');
  if (st.uid !== myUid()) throw refused(file, `it is owned by uid ${st.uid}, not by virt-qemud (uid ${myUid()})`);
  if (st.nlink !== 1) throw refused(file, `it has ${st.nlink} hard links`);
}

/**
 * Opens `file` inside its directory, held open for the whole check: `open`
 * gets the path through that directory's descriptor (so no swapped-in parent
 * is followed) and the opened file must pass checkOpened, else it is closed.
 */
function openChecked(file: string, open: (at: string) => number): number {
  const name = checkName(file);
  const dir = new HeldDir(dirname(file));
  try {
    const fd = open(dir.at(name));
    try {
      checkOpened(file, fstatSync(fd));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  } finally {
    dir.close();
  }
}

/** Creates a new save image (never an existing file, never through a link); returns its descriptor. */
export function createSaveFile(file: string): number {
  return openChecked(file, (at) => {
    try {
      return openSync(at, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new VirtError('VIRT_ERR_OPERATION_INVALID', `save image ${file} already exists (or is a link); it is never overwritten`);
      throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot create save image ${file}: ${(err as Error).message}`, { cause: err });
    }
  });
}

/** Opens an existing save image for reading: no link followed, ours, regular, one link. */
export function openSaveFile(file: string): number {
  return openChecked(file, (at) => {
    try {
      return openSync(at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw refused(file, 'it is a symbolic link');
      throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot open save image ${file}: ${(err as Error).message}`, { cause: err });
    }
  });
}

function mac(key: Buffer, signed: Buffer): Buffer {
  return createHmac('sha256', key).update(signed).digest();
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** Writes the header and its MAC at the start of fd; returns the offset where the migration stream starts. */
export function writeSaveHeader(fd: number, header: SaveHeader, key: Buffer): number {
  const body = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  const signed = Buffer.concat([MAGIC, len, body]);
  writeAll(fd, signed);
  writeAll(fd, mac(key, signed));
  return signed.length + MAC_BYTES;
}

/** Reads and authenticates the header of an open image. */
export function readSaveHeader(fd: number, file: string, key: Buffer): { header: SaveHeader; offset: number } {
  const head = Buffer.alloc(MAGIC.length + 4);
  if (readSync(fd, head, 0, head.length, 0) !== head.length) throw refused(file, 'it is not a virt-qemud save image');
  const magic = head.subarray(0, MAGIC.length);
  if (magic.equals(OLD_MAGIC)) throw refused(file, 'it is an unauthenticated version-1 image; images without a MAC are not restored');
  if (!magic.equals(MAGIC)) throw refused(file, 'it is not a virt-qemud save image');
  const len = head.readUInt32BE(MAGIC.length);
  if (len === 0 || len > MAX_HEADER) throw refused(file, `header length ${len} is out of range`);
  const rest = Buffer.alloc(len + MAC_BYTES);
  if (readSync(fd, rest, 0, rest.length, head.length) !== rest.length) throw refused(file, 'its header is truncated');
  const body = rest.subarray(0, len);
  const expected = mac(key, Buffer.concat([head, body]));
  if (!timingSafeEqual(expected, rest.subarray(len))) throw refused(file, 'its MAC does not verify: it was not written by this virt-qemud, or was altered');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw refused(file, 'its header is not JSON');
  }
  const h = parsed as Record<string, unknown>;
  const state = h['state'];
  if (state !== 'running' && state !== 'paused') throw refused(file, 'its header has no valid state');
  const definition = validateDefinition(h['definition']);
  return { header: { definition, state, savedAt: String(h['savedAt']) }, offset: head.length + len + MAC_BYTES };
}

/** Canonical text of a definition, for "does the image match the current definition". */
export function definitionText(def: DomainDefinition): string {
  return JSON.stringify(validateDefinition(def));
}

/** Names which parts of the image's definition disagree with the current one (empty: they agree). */
export function definitionDifferences(current: DomainDefinition, image: DomainDefinition): string[] {
  const a = validateDefinition(current) as unknown as Record<string, unknown>;
  const b = validateDefinition(image) as unknown as Record<string, unknown>;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

function migrationSocket(ctx: QemudContext, d: Domain, what: string): string {
  const priv = d.runtime?.privDir;
  return priv !== undefined ? join(priv, `${what}.sock`) : join(ctx.o.paths.qmpDir, `${what}-${d.stored.uuid}.sock`);
}

/** Saves a running or paused domain to a new image `file` and stops it; the image becomes its managed save. */
export async function saveDomain(ctx: QemudContext, d: Domain, file: string): Promise<void> {
  if (d.state !== 'running' && d.state !== 'paused') throw invalidState(d, 'save', 'it is neither running nor paused');
  const prior: 'running' | 'paused' = d.state === 'running' ? 'running' : 'paused';
  const cfg = d.config;
  // Created here, exclusively and without following a link, before the guest is paused.
  const fd = createSaveFile(file);
  let receiver: Receiver | undefined;
  if (prior === 'running') {
    await command(ctx, d, 'stop');
    apply(ctx, d, { kind: 'save-paused' });
  }
  try {
    const offset = writeSaveHeader(fd, { definition: cfg, state: prior, savedAt: new Date().toISOString() }, ctx.saveKey);
    ctx.log.info('saving domain', { domain: d.name, file, offset });
    const sock = migrationSocket(ctx, d, 'save');
    receiver = await receiveInto(sock, fd, offset, ctx.o.qemuUser);
    // QEMU 7.2 caps migration at 32 MiB/s by default; a local file needs no cap.
    await command(ctx, d, 'migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
    await command(ctx, d, 'migrate', { uri: `unix:${sock}` });
    await waitMigration(ctx, d, false);
    await withTimeout(receiver.done, ctx.o.saveTimeoutMs, `writing save image ${file}`);
  } catch (err) {
    receiver?.close();
    closeSync(fd);
    unlinkQuiet(file);
    if (prior === 'running' && d.active) {
      await command(ctx, d, 'cont').catch(() => undefined);
      apply(ctx, d, { kind: 'save-failed' });
    }
    throw toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
  }
  closeSync(fd);
  apply(ctx, d, { kind: 'expect-exit', reason: 'saved' });
  await command(ctx, d, 'quit').catch(() => undefined);
  if (!(await waitStopped(ctx, d, 10_000))) await kill(ctx, d, 'saved');
  const rec: SaveRecord = { file, state: prior, savedAt: new Date().toISOString() };
  ctx.store.saveSave(d.name, rec);
  d.managedSave = rec;
  apply(ctx, d, { kind: 'stopped-as', reason: 'saved' });
}

/**
 * Waits for a migration to end: an outgoing one (save) at "completed", an
 * incoming one (restore) once QEMU has also left "inmigrate".
 */
async function waitMigration(ctx: QemudContext, d: Domain, incoming: boolean): Promise<void> {
  const what = incoming ? 'restore' : 'save';
  const until = Date.now() + ctx.o.saveTimeoutMs;
  for (;;) {
    const st = parseQueryMigrate(await command(ctx, d, 'query-migrate'));
    if (st.status === 'failed' || st.status === 'cancelled') {
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `${what} of domain ${d.name} failed: ${st.error ?? st.status}`, { domain: d.name });
    }
    if (st.status === 'completed' && (!incoming || parseQueryStatus(await command(ctx, d, 'query-status')) !== 'inmigrate')) return;
    if (Date.now() > until) throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what} of domain ${d.name} did not finish within ${ctx.o.saveTimeoutMs} ms`, { domain: d.name });
    await sleep(50);
  }
}

/** The (authenticated) definition a save image holds. */
export function imageDefinition(ctx: QemudContext, file: string): DomainDefinition {
  const fd = openSaveFile(file);
  try {
    return readSaveHeader(fd, file, ctx.saveKey).header.definition;
  } finally {
    closeSync(fd);
  }
}

/**
 * Restores d, shut off, from image `file`: only an image of this domain
 * whose definition matches the stored one, started with the stored one
 * (never the image's copy of it).
 */
export async function restoreInto(ctx: QemudContext, d: Domain, file: string): Promise<void> {
  const fd = openSaveFile(file);
  try {
    const { header, offset } = readSaveHeader(fd, file, ctx.saveKey);
    if (header.definition.uuid !== d.stored.uuid) {
      throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${header.definition.name} (${header.definition.uuid}), not of ${d.name}`, { domain: d.name });
    }
    const diff = definitionDifferences(d.stored, header.definition);
    if (diff.length > 0) {
      throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} does not match the current definition of ${d.name} (differs in ${diff.join(', ')}); it is not restored`, { domain: d.name });
    }
    await launch(ctx, d, d.stored, true);
    try {
      const sock = migrationSocket(ctx, d, 'restore');
      await command(ctx, d, 'migrate-incoming', { uri: `unix:${sock}` });
      await sendFrom(sock, fd, offset);
      unlinkQuiet(sock);
      await waitMigration(ctx, d, true);
      if (header.state === 'running') await command(ctx, d, 'cont');
      apply(ctx, d, { kind: 'restored', running: header.state === 'running' });
    } catch (err) {
      await kill(ctx, d, 'failed').catch(() => undefined);
      throw toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
    }
  } finally {
    closeSync(fd);
  }
  if (d.managedSave?.file === file) {
    ctx.store.removeSave(d.name);
    d.managedSave = null;
  }
  ctx.log.info('domain restored', { domain: d.name, file, state: d.state });
}

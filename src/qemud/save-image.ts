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
 */
import { closeSync, constants, fstatSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { VirtError } from '../virt/errors.ts';
import { validateDefinition, type DomainDefinition } from './definition.ts';

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

/**
 * Save images: a small header naming the domain and its definition, then the
 * raw QEMU migration stream. Restore reads the header to rebuild the same
 * device configuration and feeds QEMU the stream from the offset after it.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { VirtError } from '../virt/errors.ts';
import { validateDefinition, type DomainDefinition } from './definition.ts';

const MAGIC = Buffer.from('VIRTQEMUD-SAVE1\n', 'latin1');
const MAX_HEADER = 1024 * 1024;

export interface SaveHeader {
  definition: DomainDefinition;
  state: 'running' | 'paused';
  savedAt: string;
}

/** Writes the header (truncating the file); returns the offset where the migration stream starts. */
export function writeSaveHeader(file: string, header: SaveHeader): number {
  const body = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  const fd = openSync(file, 'w', 0o600);
  try {
    for (const b of [MAGIC, len, body]) {
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    }
  } finally {
    closeSync(fd);
  }
  return MAGIC.length + 4 + body.length;
}

export function readSaveHeader(file: string): { header: SaveHeader; offset: number } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot open save image ${file}: ${(err as Error).message}`);
  }
  try {
    const head = Buffer.alloc(MAGIC.length + 4);
    if (readSync(fd, head, 0, head.length, 0) !== head.length || !head.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new VirtError('VIRT_ERR_INVALID_ARG', `${file} is not a virt-qemud save image`);
    }
    const len = head.readUInt32BE(MAGIC.length);
    if (len === 0 || len > MAX_HEADER) throw new VirtError('VIRT_ERR_INVALID_ARG', `${file}: save image header length ${len} is out of range`);
    const body = Buffer.alloc(len);
    if (readSync(fd, body, 0, len, head.length) !== len) throw new VirtError('VIRT_ERR_INVALID_ARG', `${file}: truncated save image header`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new VirtError('VIRT_ERR_INVALID_ARG', `${file}: save image header is not JSON`);
    }
    const h = parsed as Record<string, unknown>;
    const state = h['state'];
    if (state !== 'running' && state !== 'paused') throw new VirtError('VIRT_ERR_INVALID_ARG', `${file}: save image header has no valid state`);
    const definition = validateDefinition(h['definition']);
    return { header: { definition, state, savedAt: String(h['savedAt']) }, offset: head.length + len };
  } finally {
    closeSync(fd);
  }
}

/** Single-quotes a string for /bin/sh (QEMU's exec: migration runs through it). */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

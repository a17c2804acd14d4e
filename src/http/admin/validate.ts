import { lstat, realpath } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join, sep } from 'node:path';
import { Problem, quote } from './problem.ts';
import type { DomainAction } from './roles.ts';
import { DOMAIN_NAME_PATTERN as DOMAIN_NAME_RE, UUID_PATTERN as UUID_RE } from '../../util/validate.ts';

/**
 * Input discipline for the admin API: strict patterns for domain keys,
 * bounded bodies, JSON schemas with unknown keys rejected, and save files
 * confined to one directory. Nothing here ever reaches a shell.
 */

// One path segment of a save file: no "..", no hidden files, no separators.
const FILE_SEGMENT_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
const MAX_FILE_SEGMENTS = 4;

/** A path segment naming a domain: a name or a UUID (lower-cased), else 400. */
export function domainKey(segment: string): string {
  if (UUID_RE.test(segment)) return segment.toLowerCase();
  if (DOMAIN_NAME_RE.test(segment)) return segment;
  throw new Problem(400, 'VIRT_ERR_INVALID_ARG', `invalid domain name or UUID ${quote(segment)}: names match ${DOMAIN_NAME_RE.source}`);
}

function invalid(detail: string): Problem {
  return new Problem(400, 'VIRT_ERR_INVALID_ARG', detail);
}

/**
 * Reads a request body up to `max` bytes. A declared or actual larger body is
 * refused with 413 and the connection is closed rather than drained.
 */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) {
    throw new Problem(413, 'VIRT_ERR_INVALID_ARG', `request body of ${declared} bytes exceeds the limit of ${max} bytes`, { Connection: 'close' });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > max) {
        throw new Problem(413, 'VIRT_ERR_INVALID_ARG', `request body exceeds the limit of ${max} bytes`, { Connection: 'close' });
      }
      chunks.push(buf);
    }
  } catch (err) {
    if (err instanceof Problem) throw err;
    // The client went away or sent a broken chunked encoding: its fault, not ours.
    throw new Problem(400, 'VIRT_ERR_INVALID_ARG', `request body could not be read: ${(err as Error).message}`, { Connection: 'close' });
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON object body; an empty body reads as {} when `allowEmpty`. */
export function jsonObject(req: IncomingMessage, body: Buffer, allowEmpty: boolean): Record<string, unknown> {
  if (body.length === 0) {
    if (allowEmpty) return {};
    throw invalid('a JSON object body is required');
  }
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(type)) {
    throw new Problem(415, 'VIRT_ERR_INVALID_ARG', `content type must be application/json, got ${quote(type)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (err) {
    throw invalid(`body is not valid UTF-8 JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid('body must be a JSON object');
  return value as Record<string, unknown>;
}

export interface ActionBody {
  force?: boolean;
  file?: string;
}

const ACTION_KEYS: Readonly<Record<DomainAction, readonly string[]>> = {
  start: [],
  shutdown: ['force'],
  reboot: [],
  destroy: [],
  suspend: [],
  resume: [],
  save: ['file'],
  restore: ['file'],
};

/** Checks an action's body against its schema: known keys only, right types, required file. */
export function actionBody(action: DomainAction, obj: Record<string, unknown>): ActionBody {
  const allowed = ACTION_KEYS[action];
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw invalid(`unknown key ${quote(key)} in the ${action} body; ${allowed.length === 0 ? 'it takes no keys' : `known keys: ${allowed.join(', ')}`}`);
    }
  }
  const out: ActionBody = {};
  if ('force' in obj) {
    if (typeof obj.force !== 'boolean') throw invalid('"force" must be true or false');
    out.force = obj.force;
  }
  if (action === 'save' || action === 'restore') {
    if (typeof obj.file !== 'string') throw invalid(`"file" (a path relative to the save directory) is required for ${action}`);
    out.file = obj.file;
  }
  return out;
}

/**
 * Resolves a save file name inside the save directory (already a real path).
 * Segments match a strict pattern (so no "..", no absolute paths); every
 * existing component is checked with lstat so a symlink cannot lead out;
 * and the parent's real path must still be inside the directory.
 */
export async function confinedFile(dir: string, name: string, mode: 'create' | 'existing'): Promise<string> {
  const segments = name.split('/');
  if (name.length > 512 || segments.length > MAX_FILE_SEGMENTS || !segments.every((s) => FILE_SEGMENT_RE.test(s))) {
    throw invalid(`invalid save file name ${quote(name)}: relative path of up to ${MAX_FILE_SEGMENTS} segments matching ${FILE_SEGMENT_RE.source}`);
  }
  let current = dir;
  for (const [i, seg] of segments.entries()) {
    current = join(current, seg);
    const last = i === segments.length - 1;
    let st;
    try {
      st = await lstat(current);
    } catch {
      if (last && mode === 'create') break;
      throw invalid(`save file ${quote(name)} does not exist in the save directory`);
    }
    if (st.isSymbolicLink()) throw invalid(`save file ${quote(name)} goes through a symbolic link; links are not followed`);
    if (!last && !st.isDirectory()) throw invalid(`save file ${quote(name)}: ${quote(seg)} is not a directory`);
    if (last && mode === 'create') throw new Problem(409, 'VIRT_ERR_OPERATION_INVALID', `save file ${quote(name)} already exists`);
    if (last && !st.isFile()) throw invalid(`save file ${quote(name)} is not a regular file`);
  }
  const parent = await realpath(join(current, '..'));
  if (parent !== dir && !parent.startsWith(dir + sep)) throw invalid(`save file ${quote(name)} resolves outside the save directory`);
  return current;
}

/**
 * The driver <-> virt-qemud protocol. Each frame is a 4-byte big-endian
 * payload length followed by that many bytes of UTF-8 JSON. Frames are
 * bounded: a length over the limit gets one error reply and the connection is
 * closed (only that one). Every request and reply carries the protocol
 * version; a request of another version is refused with VIRT_ERR_RPC.
 *
 *   request: {"v":1,"id":7,"op":"domainInfo","args":["web1"]}
 *   reply:   {"v":1,"id":7,"result":{...}}
 *            {"v":1,"id":7,"error":{"code":"VIRT_ERR_NO_DOMAIN","message":"..."}}
 */
import { OP_NAMES, OPERATIONS, type OpName } from '../drivers/ops.ts';
import { ERROR_CODES, VirtError, type VirtErrorCode } from '../virt/errors.ts';

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 4;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Every operation of the table is spoken here; the read-only socket answers the reads only. */
export type Op = OpName;
export const READ_OPS: readonly Op[] = OP_NAMES.filter((n) => !OPERATIONS[n].write);
export const WRITE_OPS: readonly Op[] = OP_NAMES.filter((n) => OPERATIONS[n].write);

export interface Request {
  v: number;
  id: number | string;
  op: string;
  args: unknown[];
}

export interface ReplyError {
  code: VirtErrorCode;
  message: string;
}

export interface Reply {
  v: number;
  id: number | string | null;
  result?: unknown;
  error?: ReplyError;
}

export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, HEADER_BYTES);
  return frame;
}

export type Decoded = { kind: 'message'; value: unknown } | { kind: 'malformed'; message: string } | { kind: 'oversized'; length: number };

/** Incremental frame reader; stops (returns 'oversized') at the first frame over the limit. */
export class FrameDecoder {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #dead = false;

  constructor(maxFrameBytes: number) {
    this.#max = maxFrameBytes;
  }

  push(chunk: Buffer): Decoded[] {
    if (this.#dead) return [];
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    const out: Decoded[] = [];
    for (;;) {
      if (this.#size < HEADER_BYTES) break;
      const first = (this.#chunks[0] as Buffer).length >= HEADER_BYTES ? (this.#chunks[0] as Buffer) : this.#flatten();
      const len = first.readUInt32BE(0);
      if (len > this.#max) {
        this.#dead = true;
        this.#chunks = [];
        this.#size = 0;
        out.push({ kind: 'oversized', length: len });
        break;
      }
      // An unfinished frame is not copied again for every chunk that arrives.
      if (this.#size < HEADER_BYTES + len) break;
      const buf = this.#flatten();
      const body = buf.subarray(HEADER_BYTES, HEADER_BYTES + len);
      const rest = buf.subarray(HEADER_BYTES + len);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
      out.push(decodeBody(body));
    }
    return out;
  }

  #flatten(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] as Buffer;
  }
}

function decodeBody(body: Buffer): Decoded {
  if (body.length === 0) return { kind: 'malformed', message: 'empty frame' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { kind: 'malformed', message: 'frame is not valid UTF-8' };
  }
  try {
    return { kind: 'message', value: JSON.parse(text) as unknown };
  } catch (err) {
    return { kind: 'malformed', message: `frame is not valid JSON: ${(err as Error).message}` };
  }
}

/** Checks a decoded request; throws VIRT_ERR_RPC naming what is wrong. */
export function checkRequest(value: unknown): Request {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VirtError('VIRT_ERR_RPC', 'request must be a JSON object');
  const r = value as Record<string, unknown>;
  if (r['v'] !== PROTOCOL_VERSION) {
    throw new VirtError('VIRT_ERR_RPC', `unsupported protocol version ${JSON.stringify(r['v'])}; this virt-qemud speaks version ${PROTOCOL_VERSION}`);
  }
  const id = r['id'];
  if (!((typeof id === 'number' && Number.isSafeInteger(id)) || (typeof id === 'string' && id.length <= 64))) {
    throw new VirtError('VIRT_ERR_RPC', 'request id must be an integer or a short string');
  }
  if (typeof r['op'] !== 'string') throw new VirtError('VIRT_ERR_RPC', 'request op must be a string');
  const args = r['args'] ?? [];
  if (!Array.isArray(args)) throw new VirtError('VIRT_ERR_RPC', 'request args must be an array');
  for (const k of Object.keys(r)) {
    if (!['v', 'id', 'op', 'args'].includes(k)) throw new VirtError('VIRT_ERR_RPC', `unknown request key ${JSON.stringify(k)}`);
  }
  return { v: PROTOCOL_VERSION, id, op: r['op'], args };
}

/** Reads a reply's error back into a VirtError (unknown codes become VIRT_ERR_RPC). */
export function replyError(e: unknown): VirtError {
  if (typeof e === 'object' && e !== null) {
    const code = (e as Record<string, unknown>)['code'];
    const message = (e as Record<string, unknown>)['message'];
    if (typeof code === 'string' && code in ERROR_CODES) {
      return new VirtError(code as VirtErrorCode, typeof message === 'string' ? message : code);
    }
  }
  return new VirtError('VIRT_ERR_RPC', `malformed error reply from virt-qemud: ${JSON.stringify(e)}`);
}

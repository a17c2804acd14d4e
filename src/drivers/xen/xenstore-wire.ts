/**
 * XenStore wire format (protocols.md §3): a 16-byte header of four u32
 * {type, req_id, tx_id, len}, little-endian as on x86, then len payload bytes.
 * Shared by the client and the test stand-in server.
 */
import { VirtError } from '../../virt/errors.ts';

export const XS = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;

export const XS_HEADER_BYTES = 16;
/** XENSTORE_PAYLOAD_MAX: both directions. */
export const XS_PAYLOAD_MAX = 4096;

export interface XsMessage {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export function encodeMessage(m: XsMessage): Buffer {
  const b = Buffer.alloc(XS_HEADER_BYTES + m.payload.length);
  b.writeUInt32LE(m.type >>> 0, 0);
  b.writeUInt32LE(m.reqId >>> 0, 4);
  b.writeUInt32LE(m.txId >>> 0, 8);
  b.writeUInt32LE(m.payload.length, 12);
  m.payload.copy(b, XS_HEADER_BYTES);
  return b;
}

/**
 * Incremental decoder. push() returns the complete messages so far; a
 * header announcing more than XS_PAYLOAD_MAX throws VIRT_ERR_RPC (the peer is broken).
 */
export class XsDecoder {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): XsMessage[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: XsMessage[] = [];
    while (this.#buf.length >= XS_HEADER_BYTES) {
      const len = this.#buf.readUInt32LE(12);
      if (len > XS_PAYLOAD_MAX) throw new VirtError('VIRT_ERR_RPC', `xenstore message announces a payload of ${len} bytes, over the ${XS_PAYLOAD_MAX}-byte limit`, { driver: 'xen/xenstore' });
      if (this.#buf.length < XS_HEADER_BYTES + len) break;
      out.push({
        type: this.#buf.readUInt32LE(0),
        reqId: this.#buf.readUInt32LE(4),
        txId: this.#buf.readUInt32LE(8),
        payload: Buffer.from(this.#buf.subarray(XS_HEADER_BYTES, XS_HEADER_BYTES + len)),
      });
      this.#buf = this.#buf.subarray(XS_HEADER_BYTES + len);
    }
    return out;
  }

  get pendingBytes(): number {
    return this.#buf.length;
  }
}

/** Splits NUL-terminated strings (DIRECTORY replies, WATCH_EVENT payloads). */
export function splitNul(payload: Buffer): string[] {
  const s = payload.toString('utf8');
  if (s === '') return [];
  const parts = s.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

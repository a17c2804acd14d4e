/**
 * Framing helpers for clients of the RPC transport: a FrameDecoder splits
 * the inbound byte stream into frames and throws a VirtError (VIRT_ERR_RPC)
 * on a bad one, which closes the connection.
 */
import { VirtError } from '../virt/errors.ts';

/** Splits a byte stream into frames; throws a VirtError (VIRT_ERR_RPC) on a bad one. */
export interface FrameDecoder<F> {
  push(chunk: Buffer): F[];
  /** Bytes held of a frame not yet complete; a stream that ends with some is a truncated reply. */
  readonly pendingBytes?: number;
}

/**
 * A decoder for frames prefixed by a 4-byte big-endian length, checked against
 * the limit before any buffer for the frame is allocated. `inclusive`: the
 * length counts its own 4 bytes (libvirt, XDR record marking does not).
 */
export class LengthPrefixedDecoder implements FrameDecoder<Buffer> {
  readonly #max: number;
  readonly #min: number;
  readonly #inclusive: boolean;
  readonly #peer: string;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(opts: { maxFrameBytes: number; minFrameBytes: number; inclusive: boolean; peer: string }) {
    this.#max = opts.maxFrameBytes;
    this.#min = opts.minFrameBytes;
    this.#inclusive = opts.inclusive;
    this.#peer = opts.peer;
  }

  get pendingBytes(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.#buffered < 4) break;
      const head = this.#peek4();
      const total = this.#inclusive ? head : head + 4;
      if (total - 4 < this.#min || head < 0) {
        throw new VirtError('VIRT_ERR_RPC', `${this.#peer} sent a frame whose length word (${head}) is below the ${this.#min}-byte minimum`);
      }
      if (total > this.#max) {
        throw new VirtError('VIRT_ERR_RPC', `${this.#peer} announced a ${total}-byte frame, over the ${this.#max}-byte limit; connection closed before reading it`);
      }
      if (this.#buffered < total) break;
      const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#buffered);
      out.push(all.subarray(4, total));
      const rest = all.subarray(total);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
    }
    return out;
  }

  #peek4(): number {
    const first = this.#chunks[0] as Buffer;
    if (first.length >= 4) return first.readUInt32BE(0);
    const b = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [b];
    return b.readUInt32BE(0);
  }
}

/**
 * A decoder for newline-terminated text lines (QMP's CRLF-terminated JSON):
 * split on the LF byte (safe inside UTF-8), surrounding whitespace trimmed,
 * blank lines skipped. A line longer than maxLineBytes is a protocol error.
 */
export class LineDecoder implements FrameDecoder<string> {
  readonly #max: number;
  readonly #peer: string;
  #buf: Buffer = Buffer.alloc(0);

  constructor(opts: { maxLineBytes: number; peer: string }) {
    this.#max = opts.maxLineBytes;
    this.#peer = opts.peer;
  }

  get pendingBytes(): number {
    return this.#buf.length;
  }

  push(chunk: Buffer): string[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: string[] = [];
    let nl: number;
    while ((nl = this.#buf.indexOf(0x0a)) >= 0 && nl <= this.#max) {
      const line = this.#buf.subarray(0, nl).toString('utf8').trim();
      this.#buf = this.#buf.subarray(nl + 1);
      if (line !== '') out.push(line);
    }
    if (nl > this.#max || this.#buf.length > this.#max) {
      throw new VirtError('VIRT_ERR_RPC', `${this.#peer} sent a line longer than ${this.#max} bytes`);
    }
    return out;
  }
}

/**
 * XDR (RFC 4506) encoding and decoding, as libvirt's RPC uses it: 4-byte
 * big-endian units, strings and opaques padded to 4 bytes, variable arrays
 * prefixed by their count, optional data by a boolean. The reader bounds
 * every length against both its declared maximum and the bytes actually
 * left before allocating anything.
 */
import { VirtError } from '../../virt/errors.ts';

function bad(what: string): VirtError {
  return new VirtError('VIRT_ERR_RPC', `malformed XDR: ${what}`);
}

const pad = (n: number): number => (4 - (n % 4)) % 4;

export class XdrWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(initial = 256) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new VirtError('VIRT_ERR_INVALID_ARG', `XDR int out of range: ${v}`);
    this.#room(4);
    this.#buf.writeInt32BE(v, this.#pos);
    this.#pos += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new VirtError('VIRT_ERR_INVALID_ARG', `XDR unsigned int out of range: ${v}`);
    this.#room(4);
    this.#buf.writeUInt32BE(v, this.#pos);
    this.#pos += 4;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  hyper(v: bigint): this {
    this.#room(8);
    this.#buf.writeBigInt64BE(v, this.#pos);
    this.#pos += 8;
    return this;
  }

  uhyper(v: bigint): this {
    this.#room(8);
    this.#buf.writeBigUInt64BE(v, this.#pos);
    this.#pos += 8;
    return this;
  }

  double(v: number): this {
    this.#room(8);
    this.#buf.writeDoubleBE(v, this.#pos);
    this.#pos += 8;
    return this;
  }

  fixedOpaque(b: Uint8Array, length: number): this {
    if (b.length !== length) throw new VirtError('VIRT_ERR_INVALID_ARG', `XDR fixed opaque of ${b.length} bytes, expected ${length}`);
    this.#room(length + pad(length));
    this.#buf.set(b, this.#pos);
    this.#pos += length;
    this.#buf.fill(0, this.#pos, this.#pos + pad(length));
    this.#pos += pad(length);
    return this;
  }

  opaque(b: Uint8Array, max: number): this {
    if (b.length > max) throw new VirtError('VIRT_ERR_INVALID_ARG', `XDR opaque of ${b.length} bytes, over its ${max}-byte limit`);
    this.uint(b.length);
    return this.fixedOpaque(b, b.length);
  }

  string(s: string, max: number): this {
    return this.opaque(Buffer.from(s, 'utf8'), max);
  }

  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  /** Reserves 4 bytes to patch later (the message length word). */
  get length(): number {
    return this.#pos;
  }

  patchUint(at: number, v: number): void {
    this.#buf.writeUInt32BE(v, at);
  }

  finish(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }
}

export class XdrReader {
  readonly #buf: Buffer;
  #pos: number;

  constructor(buf: Buffer, offset = 0) {
    this.#buf = buf;
    this.#pos = offset;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  get offset(): number {
    return this.#pos;
  }

  #need(n: number, what: string): void {
    if (this.remaining < n) throw bad(`${what} needs ${n} bytes, ${this.remaining} left`);
  }

  int(): number {
    this.#need(4, 'int');
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint(): number {
    this.#need(4, 'unsigned int');
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw bad(`boolean ${v}`);
    return v === 1;
  }

  hyper(): bigint {
    this.#need(8, 'hyper');
    const v = this.#buf.readBigInt64BE(this.#pos);
    this.#pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.#need(8, 'unsigned hyper');
    const v = this.#buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return v;
  }

  double(): number {
    this.#need(8, 'double');
    const v = this.#buf.readDoubleBE(this.#pos);
    this.#pos += 8;
    return v;
  }

  fixedOpaque(length: number): Buffer {
    this.#need(length + pad(length), 'fixed opaque');
    const b = this.#buf.subarray(this.#pos, this.#pos + length);
    this.#pos += length + pad(length);
    return b;
  }

  opaque(max: number): Buffer {
    const n = this.uint();
    if (n > max) throw bad(`opaque of ${n} bytes, over its ${max}-byte limit`);
    return this.fixedOpaque(n);
  }

  string(max: number): string {
    return this.opaque(max).toString('utf8');
  }

  /** A counted array; the count is checked against max and against what is left (each element takes at least 4 bytes). */
  array<T>(max: number, read: (r: this) => T, minElementBytes = 4): T[] {
    const n = this.uint();
    if (n > max) throw bad(`array of ${n} elements, over its limit of ${max}`);
    if (n * minElementBytes > this.remaining) throw bad(`array of ${n} elements cannot fit in the ${this.remaining} bytes left`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  /** The whole payload must have been read: trailing bytes mean a layout mismatch. */
  end(what: string): void {
    if (this.remaining !== 0) throw bad(`${this.remaining} trailing bytes after ${what}`);
  }
}

/**
 * A growable byte buffer kept across scrapes, written piece by piece. A large
 * scrape is tens of thousands of short lines made of a few constant pieces,
 * label values and one number; building each line as a string and encoding
 * it made string ropes, their flattening in the UTF-8 encoder and the garbage
 * collector most of a scrape's cost. Here each piece goes straight into the
 * buffer and leaves no garbage: ASCII pieces (every metric and label name,
 * nearly every label value) with the latin1 writer, which needs no encoding,
 * integers digit by digit, anything else as UTF-8.
 */
export class ByteSink {
  buf: Buffer = Buffer.allocUnsafe(4096);
  len = 0;
  /** Digits of an integer, written backwards before they are copied out. */
  readonly #digits = new Uint8Array(24);

  #ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Appends a string as UTF-8. */
  text(s: string): void {
    this.#ensure(s.length * 3);
    this.len += this.buf.write(s, this.len, 'utf8');
  }

  /** Appends a string known to be ASCII (metric and label names, numbers): no encoder needed. */
  ascii(s: string): void {
    this.#ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }

  /** Appends a label value escaped as the exposition formats require (backslash, double quote, newline). */
  labelValue(s: string): void {
    if (plainAscii(s)) this.ascii(s);
    else this.text(escapeLabelText(s));
  }

  /** Appends a sample value: integers digit by digit, other numbers as JavaScript prints them (shortest round trip). */
  value(v: number): void {
    if (!Number.isSafeInteger(v)) {
      if (Number.isNaN(v)) this.ascii('NaN');
      else if (v === Infinity) this.ascii('+Inf');
      else if (v === -Infinity) this.ascii('-Inf');
      else this.ascii(String(v));
      return;
    }
    this.#ensure(17);
    let rest = v;
    if (rest < 0) {
      this.buf[this.len++] = 0x2d;
      rest = -rest;
    }
    // In 32-bit pieces: integer division there is cheap, and a safe integer has at most 16 digits.
    if (rest < 1e8) {
      this.#digitsOf(rest, 0);
    } else {
      const high = Math.floor(rest / 1e8);
      this.#digitsOf(high, 0);
      this.#digitsOf(rest - high * 1e8, 8);
    }
  }

  /** Writes n (below 1e8) in decimal, zero-padded to `width` digits. */
  #digitsOf(n: number, width: number): void {
    const digits = this.#digits;
    let k = 0;
    let rest = n | 0;
    do {
      const q = (rest / 10) | 0;
      digits[k++] = 0x30 + rest - q * 10;
      rest = q;
    } while (rest > 0);
    while (k < width) digits[k++] = 0x30;
    const buf = this.buf;
    let at = this.len;
    while (k > 0) buf[at++] = digits[--k] as number;
    this.len = at;
  }

  /** Appends one ASCII byte. */
  byte(c: number): void {
    this.#ensure(1);
    this.buf[this.len++] = c;
  }

  reset(): void {
    this.len = 0;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** Whether a label value is ASCII needing no escape (nearly every one): then it is written as it is. */
function plainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || c === 0x5c || c === 0x22 || c === 0x0a) return false;
  }
  return true;
}

/** The exposition formats' label-value escape, for the rare value that is not plain ASCII. */
export function escapeLabelText(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

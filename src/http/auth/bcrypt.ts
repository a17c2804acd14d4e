import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * bcrypt verification (Provos & Mazières' EksBlowfish), written from the
 * published algorithm because no npm package may be added. Verification only:
 * hashes are made with `htpasswd -nbB` (or any bcrypt tool) and put in the
 * web config. $2a$, $2b$ and $2y$ are all computed the correct (2b) way: the
 * key is the UTF-8 password plus a NUL, cut to 72 bytes. $2x$ (the
 * crypt_blowfish sign-extension bug) is refused.
 */

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < BCRYPT_ALPHABET.length; i++) DECODE[BCRYPT_ALPHABET.charCodeAt(i)] = i;

const HASH_RE = /^\$(2[aby])\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;
const MIN_COST = 4;
const MAX_COST = 31;

export interface ParsedBcrypt {
  variant: '2a' | '2b' | '2y';
  cost: number;
  salt: Uint8Array;
  /** The 31-character encoded digest, as in the hash string. */
  digest: string;
}

/** Parses a bcrypt hash string; null when it is not one this module can verify. */
export function parseBcrypt(hash: string): ParsedBcrypt | null {
  const m = HASH_RE.exec(hash);
  if (m === null) return null;
  const [, variant, costText, saltText, digest] = m as unknown as [string, '2a' | '2b' | '2y', string, string, string];
  const cost = Number(costText);
  if (cost < MIN_COST || cost > MAX_COST) return null;
  const salt = decodeBase64(saltText, 16);
  if (salt === null) return null;
  return { variant, cost, salt, digest };
}

function decodeBase64(text: string, length: number): Uint8Array | null {
  const out = new Uint8Array(length);
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < text.length && n < length; i++) {
    const code = text.charCodeAt(i);
    const v = code < 128 ? (DECODE[code] ?? -1) : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >>> bits) & 0xff;
    }
  }
  return n === length ? out : null;
}

function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xffffff;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += BCRYPT_ALPHABET[(acc >>> bits) & 0x3f];
    }
  }
  if (bits > 0) out += BCRYPT_ALPHABET[(acc << (6 - bits)) & 0x3f];
  return out;
}

/**
 * Blowfish's initial P-array and S-boxes are the fractional hexadecimal
 * digits of pi (18 + 1024 words). Computing them with Machin's formula
 * replaces a 1042-word table that a single typo would silently break; the
 * known first words and the OpenWall vectors check the result.
 */
let piWordsCache: Uint32Array | undefined;
export function piWords(): Uint32Array {
  if (piWordsCache !== undefined) return piWordsCache;
  const words = 18 + 1024;
  const bits = BigInt(words * 32);
  const guard = 64n;
  const one = 1n << (bits + guard);
  const arctanInv = (x: bigint): bigint => {
    const x2 = x * x;
    let power = one / x;
    let sum = power;
    let k = 1n;
    let negative = true;
    while (power !== 0n) {
      power /= x2;
      const term = power / (2n * k + 1n);
      sum = negative ? sum - term : sum + term;
      negative = !negative;
      k++;
    }
    return sum;
  };
  const pi = 16n * arctanInv(5n) - 4n * arctanInv(239n);
  const fraction = (pi - 3n * one) >> guard;
  const out = new Uint32Array(words);
  for (let i = 0; i < words; i++) {
    out[i] = Number((fraction >> (bits - 32n * BigInt(i + 1))) & 0xffffffffn);
  }
  piWordsCache = out;
  return out;
}

interface State {
  p: Uint32Array;
  s: Uint32Array;
}

// Encrypts lr[0], lr[1] in place (16 rounds, unrolled by two).
function encipher(st: State, lr: Int32Array): void {
  const p = st.p;
  const s = st.s;
  let l = lr[0] as number;
  let r = lr[1] as number;
  for (let i = 0; i < 16; i += 2) {
    l ^= p[i] as number;
    r ^= (((s[l >>> 24] as number) + (s[256 | ((l >>> 16) & 0xff)] as number)) ^ (s[512 | ((l >>> 8) & 0xff)] as number)) + (s[768 | (l & 0xff)] as number);
    r ^= p[i + 1] as number;
    l ^= (((s[r >>> 24] as number) + (s[256 | ((r >>> 16) & 0xff)] as number)) ^ (s[512 | ((r >>> 8) & 0xff)] as number)) + (s[768 | (r & 0xff)] as number);
  }
  lr[0] = r ^ (p[17] as number);
  lr[1] = l ^ (p[16] as number);
}

/** Big-endian 32-bit words of `data`, cycling through it (Blowfish_stream2word). */
function streamWords(data: Uint8Array, count: number): Int32Array {
  const out = new Int32Array(count);
  let j = 0;
  for (let i = 0; i < count; i++) {
    let w = 0;
    for (let b = 0; b < 4; b++) {
      w = (w << 8) | (data[j] as number);
      j = (j + 1) % data.length;
    }
    out[i] = w;
  }
  return out;
}

// Key stream for P: 18 words; salt stream: 2 words per encryption over
// P and S (18 + 1024 words), continuing without reset as OpenBSD does.
function expandState(st: State, keyWords: Int32Array, saltWords: Int32Array | null): void {
  for (let i = 0; i < 18; i++) st.p[i] = (st.p[i] as number) ^ (keyWords[i] as number);
  const lr = new Int32Array(2);
  let k = 0;
  const fill = (arr: Uint32Array): void => {
    for (let i = 0; i < arr.length; i += 2) {
      if (saltWords !== null) {
        lr[0] = (lr[0] as number) ^ (saltWords[k % 4] as number);
        lr[1] = (lr[1] as number) ^ (saltWords[(k + 1) % 4] as number);
        k += 2;
      }
      encipher(st, lr);
      arr[i] = lr[0] as number;
      arr[i + 1] = lr[1] as number;
    }
  };
  fill(st.p);
  fill(st.s);
}

const MAGIC = new TextEncoder().encode('OrpheanBeholderScryDoubt');

/** The raw 23-byte bcrypt output for a key (bytes incl. NUL, <= 72) and salt. */
function bcryptRaw(cost: number, salt: Uint8Array, key: Uint8Array): Uint8Array {
  const init = piWords();
  const st: State = { p: init.slice(0, 18), s: init.slice(18) };
  const keyWords = streamWords(key, 18);
  const saltWords = streamWords(salt, 4);
  // The salt cycles every 4 words; a 16-byte "key" of salt gives its 18-word stream.
  const saltAsKey = streamWords(salt, 18);
  expandState(st, keyWords, saltWords);
  const rounds = 2 ** cost;
  for (let i = 0; i < rounds; i++) {
    expandState(st, keyWords, null);
    expandState(st, saltAsKey, null);
  }
  const cdata = streamWords(MAGIC, 6);
  const lr = new Int32Array(2);
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 6; j += 2) {
      lr[0] = cdata[j] as number;
      lr[1] = cdata[j + 1] as number;
      encipher(st, lr);
      cdata[j] = lr[0];
      cdata[j + 1] = lr[1];
    }
  }
  const out = new Uint8Array(24);
  for (let i = 0; i < 6; i++) {
    const w = cdata[i] as number;
    out[4 * i] = (w >>> 24) & 0xff;
    out[4 * i + 1] = (w >>> 16) & 0xff;
    out[4 * i + 2] = (w >>> 8) & 0xff;
    out[4 * i + 3] = w & 0xff;
  }
  return out.subarray(0, 23);
}

/** Computes the full bcrypt string for a password and a hash's setting (variant, cost, salt). */
export function bcryptHash(password: string | Uint8Array, parsed: Pick<ParsedBcrypt, 'variant' | 'cost' | 'salt'>): string {
  const pw = typeof password === 'string' ? new TextEncoder().encode(password) : password;
  // The NUL terminator counts toward the 72-byte limit; longer passwords are cut.
  const key = new Uint8Array(Math.min(pw.length + 1, 72));
  key.set(pw.subarray(0, Math.min(pw.length, key.length)));
  const raw = bcryptRaw(parsed.cost, parsed.salt, key);
  const saltText = encodeBase64(parsed.salt).slice(0, 22);
  return `$${parsed.variant}$${String(parsed.cost).padStart(2, '0')}$${saltText}${encodeBase64(raw)}`;
}

/** True when `password` matches the bcrypt `hash`; false for a malformed hash. */
export function verifyBcrypt(password: string | Uint8Array, hash: string): boolean {
  const parsed = parseBcrypt(hash);
  if (parsed === null) return false;
  const computed = Buffer.from(bcryptHash(password, parsed).slice(29), 'latin1');
  const expected = Buffer.from(parsed.digest, 'latin1');
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}

/**
 * Remembers successful verifications, as exporter-toolkit does, so a scraper
 * sending the same credentials every 15 s pays for bcrypt once. Keyed by a
 * SHA-256 of user, password and hash: the password itself is never stored,
 * and a changed hash (rotation) misses the cache.
 */
export class BcryptVerifyCache {
  readonly #ok = new Set<string>();
  readonly #max: number;

  constructor(maxEntries = 1024) {
    this.#max = maxEntries;
  }

  verify(user: string, password: string, hash: string): boolean {
    const key = createHash('sha256').update(user).update('\0').update(password).update('\0').update(hash).digest('hex');
    if (this.#ok.has(key)) return true;
    const ok = verifyBcrypt(password, hash);
    if (ok) {
      // Bounded: a flood of distinct valid credentials cannot grow memory.
      if (this.#ok.size >= this.#max) this.#ok.clear();
      this.#ok.add(key);
    }
    return ok;
  }

  get size(): number {
    return this.#ok.size;
  }
}

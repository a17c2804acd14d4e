/**
 * S-expressions as Xend speaks them (protocols.md §2.5): lists in parentheses,
 * bare atoms, and quoted atoms in single OR double quotes (Python repr, pitfall 8)
 * with backslash escapes. Parsing is bounded in depth, size and node count so a
 * hostile or broken reply becomes a typed error, never a crash or a hang.
 */
import { VirtError } from '../../virt/errors.ts';

export type Sexpr = string | Sexpr[];

export interface SexprLimits {
  /** Maximum nesting depth of lists. */
  maxDepth?: number;
  /** Maximum input length in characters. */
  maxLength?: number;
  /** Maximum number of atoms plus lists. */
  maxNodes?: number;
}

const DEFAULT_LIMITS: Required<SexprLimits> = { maxDepth: 64, maxLength: 4 * 1024 * 1024, maxNodes: 500_000 };

function fail(message: string, pos: number): never {
  throw new VirtError('VIRT_ERR_RPC', `malformed S-expression at offset ${pos}: ${message}`, { driver: 'xen/xend' });
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0' };

// Character codes; the parser works on codes (charCodeAt), never on one-character strings.
const OPEN = 40; // (
const CLOSE = 41; // )
const SQUOTE = 39; // '
const DQUOTE = 34; // "
const BACKSLASH = 92;
/** space, \t, \n, \v, \f, \r */
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

class Parser {
  readonly #text: string;
  readonly #limits: Required<SexprLimits>;
  #pos = 0;
  #nodes = 0;
  /** Position of the next backslash at or after #pos (text.length when none): found once, not per atom. */
  #nextBackslash = -1;

  constructor(text: string, limits: Required<SexprLimits>) {
    this.#text = text;
    this.#limits = limits;
  }

  get atEnd(): boolean {
    this.#skipSpace();
    return this.#pos >= this.#text.length;
  }

  #skipSpace(): void {
    const t = this.#text;
    let p = this.#pos;
    while (p < t.length && isSpace(t.charCodeAt(p))) p++;
    this.#pos = p;
  }

  #count(): void {
    if (++this.#nodes > this.#limits.maxNodes) fail(`more than ${this.#limits.maxNodes} nodes`, this.#pos);
  }

  // Iterative over list nesting, so depth is bounded by the limit and never by the JS stack.
  parseOne(outerDepth = 0): Sexpr {
    const t = this.#text;
    const stack: Sexpr[][] = [];
    for (;;) {
      this.#skipSpace();
      if (this.#pos >= t.length) {
        fail(stack.length > 0 ? 'unterminated list' : 'unexpected end of input', this.#pos);
      }
      const ch = t.charCodeAt(this.#pos);
      let value: Sexpr;
      if (ch === OPEN) {
        this.#pos++;
        this.#count();
        if (stack.length + outerDepth >= this.#limits.maxDepth) fail(`nesting deeper than ${this.#limits.maxDepth}`, this.#pos);
        stack.push([]);
        continue;
      } else if (ch === CLOSE) {
        if (stack.length === 0) fail('unbalanced ")"', this.#pos);
        this.#pos++;
        value = stack.pop() as Sexpr[];
      } else if (ch === SQUOTE || ch === DQUOTE) {
        this.#count();
        value = this.#quoted(ch);
      } else {
        this.#count();
        value = this.#bare();
      }
      const top = stack[stack.length - 1];
      if (top === undefined) return value;
      top.push(value);
    }
  }

  /** The elements of the list at the current position, each mapped at once. */
  eachOfList<T>(each: (item: Sexpr) => T): T[] {
    const t = this.#text;
    this.#skipSpace();
    if (this.#pos >= t.length) fail('unexpected end of input', this.#pos);
    if (t.charCodeAt(this.#pos) !== OPEN) fail('expected a list', this.#pos);
    this.#pos++;
    this.#count();
    const out: T[] = [];
    for (;;) {
      this.#skipSpace();
      if (this.#pos >= t.length) fail('unterminated list', this.#pos);
      if (t.charCodeAt(this.#pos) === CLOSE) {
        this.#pos++;
        return out;
      }
      // One level is the outer list itself.
      out.push(each(this.parseOne(1)));
    }
  }

  #bare(): string {
    const t = this.#text;
    const start = this.#pos;
    let p = start;
    while (p < t.length) {
      const c = t.charCodeAt(p);
      if (isSpace(c) || c === OPEN || c === CLOSE) break;
      if (c === SQUOTE || c === DQUOTE) fail(`quote inside bare atom`, p);
      p++;
    }
    this.#pos = p;
    return t.slice(start, p);
  }

  #quoted(quote: number): string {
    const t = this.#text;
    const start = this.#pos;
    const end = t.indexOf(quote === SQUOTE ? "'" : '"', start + 1);
    if (end < 0) fail('unterminated quoted string', start);
    if (this.#nextBackslash < start + 1) {
      const b = t.indexOf('\\', start + 1);
      this.#nextBackslash = b < 0 ? t.length : b;
    }
    // No escape before the closing quote (nearly always): the text between the quotes is the atom.
    if (this.#nextBackslash > end) {
      this.#pos = end + 1;
      return t.slice(start + 1, end);
    }
    return this.#escaped(quote, start);
  }

  #escaped(quote: number, start: number): string {
    const t = this.#text;
    this.#pos = start + 1;
    let out = '';
    for (;;) {
      if (this.#pos >= t.length) fail('unterminated quoted string', start);
      const code = t.charCodeAt(this.#pos);
      const c = t[this.#pos++] as string;
      if (code === quote) return out;
      if (code !== BACKSLASH) {
        out += c;
        continue;
      }
      if (this.#pos >= t.length) fail('unterminated escape', this.#pos);
      const e = t[this.#pos++] as string;
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) out += simple;
      else if (e === 'x' || e === 'u') {
        const n = e === 'x' ? 2 : 4;
        const hex = t.slice(this.#pos, this.#pos + n);
        if (!(n === 2 ? /^[0-9a-fA-F]{2}$/ : /^[0-9a-fA-F]{4}$/).test(hex)) fail(`bad \\${e} escape`, this.#pos);
        out += String.fromCharCode(parseInt(hex, 16));
        this.#pos += n;
      } else {
        // Backslash takes the next character literally (\\, \', \" and libvirt's rule).
        out += e;
      }
    }
  }
}

function limitsOf(limits: SexprLimits | undefined): Required<SexprLimits> {
  return { ...DEFAULT_LIMITS, ...limits };
}

function checkLength(text: string, l: Required<SexprLimits>): void {
  if (text.length > l.maxLength) fail(`input longer than ${l.maxLength} characters`, l.maxLength);
}

/** Parses exactly one expression (surrounding whitespace allowed). */
export function parseSexpr(text: string, limits?: SexprLimits): Sexpr {
  const l = limitsOf(limits);
  checkLength(text, l);
  const p = new Parser(text, l);
  const value = p.parseOne();
  if (!p.atEnd) fail('trailing data after expression', text.length);
  return value;
}

/**
 * Parses one list and hands each element to `each` as soon as it is read,
 * keeping only what `each` returns: a 500-domain Xend reply then never exists
 * as one tree (its elements die young instead of surviving into old space).
 * The limits apply to the whole input as in parseSexpr.
 */
export function parseSexprListEach<T>(text: string, each: (item: Sexpr) => T, limits?: SexprLimits): T[] {
  const l = limitsOf(limits);
  checkLength(text, l);
  const p = new Parser(text, l);
  const out = p.eachOfList(each);
  if (!p.atEnd) fail('trailing data after expression', text.length);
  return out;
}

/** Parses a sequence of expressions. */
export function parseSexprs(text: string, limits?: SexprLimits): Sexpr[] {
  const l = limitsOf(limits);
  checkLength(text, l);
  const p = new Parser(text, l);
  const out: Sexpr[] = [];
  while (!p.atEnd) out.push(p.parseOne());
  return out;
}

const BARE_ATOM = /^[A-Za-z0-9.\-_:/~]+$/;

function quote(s: string): string {
  // As Python repr: single quotes unless the text holds a ' and no ".
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const code = ch.codePointAt(0) as number;
    if (ch === '\\' || ch === q) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += '\\x' + code.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
}

/** Serializes; atoms outside letters/digits/.-_:/~ are quoted, as Xend's writer does. */
export function serializeSexpr(value: Sexpr): string {
  if (typeof value === 'string') return BARE_ATOM.test(value) ? value : quote(value);
  return '(' + value.map(serializeSexpr).join(' ') + ')';
}

/** Builds a keyed list: sexprList('domain', ['name', 'x']) -> (domain (name x)). */
export function isList(v: Sexpr | undefined): v is Sexpr[] {
  return Array.isArray(v);
}

/** Children of `node` whose head is `key`, e.g. every (device ...) of a domain. */
export function children(node: Sexpr | undefined, key: string): Sexpr[][] {
  if (!isList(node)) return [];
  return node.slice(1).filter((c): c is Sexpr[] => isList(c) && c[0] === key);
}

/**
 * Walks keyed sublists like libvirt's sexpr_lookup: lookup(d, 'image/linux/kernel')
 * on (domain ... (image (linux (kernel k)))) returns (kernel k). The first path
 * element may name the root itself.
 */
export function lookup(root: Sexpr | undefined, path: string): Sexpr[] | undefined {
  if (!isList(root)) return undefined;
  const parts = path.split('/').filter((p) => p !== '');
  let node: Sexpr[] = root;
  if (parts[0] === root[0]) parts.shift();
  for (const part of parts) {
    const next = children(node, part)[0];
    if (next === undefined) return undefined;
    node = next;
  }
  return node;
}

/** The value (first element after the key) at `path`, if it is an atom. */
export function nodeValue(root: Sexpr | undefined, path: string): string | undefined {
  const node = lookup(root, path);
  const v = node?.[1];
  return typeof v === 'string' ? v : undefined;
}

// The exposition's byte writer against plain references: label values of any
// Unicode (escapes, non-ASCII, lone surrogates), every kind of number, and
// growth far past the first buffer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteSink } from '../../src/http/byte-sink.ts';
import { holds } from '../resilience/properties/check.ts';

const escRef = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const numRef = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));

function written(fn: (s: ByteSink) => void): Buffer {
  const s = new ByteSink();
  fn(s);
  return Buffer.from(s.bytes());
}

describe('ByteSink', () => {
  it('writes label values escaped, byte for byte as the UTF-8 of the reference escape', () => {
    const values = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('a', '\\', '"', '\n', 'é', '€', '😀', '\ud800') }), fc.string());
    holds(values, (v) => {
      assert.deepEqual(written((s) => s.labelValue(v)), Buffer.from(escRef(v), 'utf8'), JSON.stringify(v));
    });
  });

  it('writes every number as JavaScript prints it, with the exposition names of NaN and the infinities', () => {
    const edges = [0, -0, 1, -1, 9, 10, 99999999, 100000000, 100000001, 2 ** 31, 2 ** 32 + 7, 1e15, 1e16 - 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 0.1, 1e-7, -3.5, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE];
    for (const v of edges) assert.equal(written((s) => s.value(v)).toString('latin1'), numRef(v), String(v));
    holds(fc.oneof(fc.double(), fc.integer(), fc.maxSafeInteger(), fc.nat({ max: 2 ** 40 })), (v) => {
      assert.equal(written((s) => s.value(v)).toString('latin1'), numRef(v));
    });
  });

  it('grows past its first buffer without losing bytes, and starts over on reset', () => {
    const s = new ByteSink();
    let expected = '';
    for (let i = 0; i < 5000; i++) {
      const label = i % 7 === 0 ? `é"${i}` : `vm-${i}`;
      s.ascii('m{d="');
      s.labelValue(label);
      s.ascii('"} ');
      s.value(i * 1234567);
      s.byte(0x0a);
      expected += `m{d="${escRef(label)}"} ${i * 1234567}\n`;
    }
    assert.equal(s.bytes().toString('utf8'), expected);
    s.reset();
    s.text('après');
    assert.equal(s.bytes().toString('utf8'), 'après');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseSexpr, parseSexprs, serializeSexpr, type Sexpr } from '../../../src/drivers/xen/sexpr.ts';
import { holds, hostileBytes, parsesOrTyped } from './check.ts';

const atom = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.stringMatching(/^[a-z0-9._-]{1,8}$/), fc.constantFrom('', "'", '"', '\\', '(', ')', '\n', '\u0000', '\u{1F600}'));
const tree: fc.Arbitrary<Sexpr> = fc.letrec<{ node: Sexpr }>((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, atom, fc.array(tie('node'), { maxLength: 5 })),
})).node;

// Text that looks like Xend output: parentheses, quotes and escapes in the mix.
const sexprish = fc.array(fc.constantFrom('(', ')', ' ', "'", '"', '\\', 'x', 'a', '\\x4', '\\n', 'domain', '\n', '\\u12'), { maxLength: 200 }).map((a) => a.join(''));

void describe('hostile input: S-expression parser (Xend replies)', () => {
  void it('parses or refuses with VIRT_ERR_RPC any text, including near-miss S-expressions', () => {
    holds(fc.oneof(fc.string({ maxLength: 300 }), sexprish, fc.string({ unit: 'binary', maxLength: 100 })), (text) => {
      parsesOrTyped(() => parseSexpr(text), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => parseSexprs(text), ['VIRT_ERR_RPC']);
    }, 5000);
  });

  void it('parses or refuses raw bytes decoded as Latin-1 and as UTF-8', () => {
    holds(hostileBytes(), (bytes) => {
      parsesOrTyped(() => parseSexprs(Buffer.from(bytes).toString('latin1')), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => parseSexprs(Buffer.from(bytes).toString('utf8')), ['VIRT_ERR_RPC']);
    });
  });

  void it('gives back what it serialised, for any tree of atoms', () => {
    holds(tree, (value) => {
      assert.deepEqual(parseSexpr(serializeSexpr(value)), value);
    });
  });

  void it('refuses nesting past the depth limit without using the JS stack', () => {
    holds(fc.integer({ min: 65, max: 200_000 }), (depth) => {
      const r = parsesOrTyped(() => parseSexpr('('.repeat(depth) + ')'.repeat(depth)), ['VIRT_ERR_RPC']);
      assert.equal(r.ok, false);
    }, 50);
  });

  void it('refuses inputs over the node and length limits', () => {
    holds(fc.integer({ min: 11, max: 5000 }), (n) => {
      assert.equal(parsesOrTyped(() => parseSexpr(`(${'a '.repeat(n)})`, { maxNodes: 10 }), ['VIRT_ERR_RPC']).ok, false);
      assert.equal(parsesOrTyped(() => parseSexpr(`(${'a'.repeat(n)})`, { maxLength: 10 }), ['VIRT_ERR_RPC']).ok, false);
    }, 200);
  });
});

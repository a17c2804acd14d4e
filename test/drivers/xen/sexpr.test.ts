import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lookup, nodeValue, parseSexpr, parseSexprListEach, parseSexprs, serializeSexpr, type Sexpr } from '../../../src/drivers/xen/sexpr.ts';
import { isVirtError } from '../../../src/virt/errors.ts';

const rpc = (fn: () => unknown): void => {
  assert.throws(fn, (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
};

void describe('S-expression parser', () => {
  void it('parses nested lists and bare atoms', () => {
    assert.deepEqual(parseSexpr('(domain (domid 5) (image (linux (kernel /boot/k))))'), ['domain', ['domid', '5'], ['image', ['linux', ['kernel', '/boot/k']]]]);
    assert.deepEqual(parseSexpr('  \n\t(a\r\nb)  '), ['a', 'b']);
    assert.deepEqual(parseSexpr('()'), []);
    assert.equal(parseSexpr('atom'), 'atom');
  });

  void it('parses single- and double-quoted strings with escapes (Python repr)', () => {
    assert.deepEqual(parseSexpr(`(args 'root=/dev/xvda1 ro')`), ['args', 'root=/dev/xvda1 ro']);
    assert.deepEqual(parseSexpr(`(args "it's here")`), ['args', "it's here"]);
    assert.deepEqual(parseSexpr(`(x 'a\\'b' "c\\"d" 'tab\\there' 'nl\\n' '\\x41\\u00e9' 'back\\\\slash' '(paren)' '')`), ['x', "a'b", 'c"d', 'tab\there', 'nl\n', 'Aé', 'back\\slash', '(paren)', '']);
  });

  void it('parses the abridged Xend reply of protocols.md §2.6', () => {
    const text = `(domain (domid 5) (uuid 4f77abd2-3019-58e8-3bab-6fbf2118f880) (vcpus 1) (cpu_weight 1.0) (memory 175) (maxmem 385)
      (name rhel5) (on_poweroff destroy) (image (linux (kernel /boot/vmlinuz) (args 'ro quiet')))
      (device (vif (bridge xenbr0) (mac 00:16:3e:1d:06:15) (script vif-bridge))) (device (tap (dev xvda:disk) (uname tap:aio:/xen/rhel5.img) (mode w)))
      (state -b----) (shutdown_reason poweroff) (cpu_time 137.189121425) (online_vcpus 1))`;
    const sx = parseSexpr(text);
    assert.equal(nodeValue(sx, 'domain/memory'), '175');
    assert.equal(nodeValue(sx, 'image/linux/args'), 'ro quiet');
    assert.equal(nodeValue(sx, 'state'), '-b----');
    assert.deepEqual(lookup(sx, 'device/vif/bridge'), ['bridge', 'xenbr0']);
    // Like libvirt's sexpr_lookup: the first (device ...) is taken, no backtracking.
    assert.equal(lookup(sx, 'device/tap/mode'), undefined);
    assert.equal(lookup(sx, 'nonexistent/x'), undefined);
  });

  void it('parses several top-level expressions', () => {
    assert.deepEqual(parseSexprs('(a) b (c d)'), [['a'], 'b', ['c', 'd']]);
    assert.deepEqual(parseSexprs('   '), []);
  });

  void it('refuses malformed input with VIRT_ERR_RPC', () => {
    for (const bad of ['', '(', '(a (b)', ')', '(a))', "(a 'unterminated)", '(a "x', "(a '\\", '(a) (b)', "(a b'c)", "(a '\\xZZ')", "(a '\\u12')"]) {
      rpc(() => parseSexpr(bad));
    }
  });

  void it('bounds depth, length and node count (hostile input)', () => {
    rpc(() => parseSexpr('('.repeat(100_000) + ')'.repeat(100_000)));
    rpc(() => parseSexpr('('.repeat(65) + ')'.repeat(65)));
    assert.deepEqual(parseSexpr('('.repeat(64) + ')'.repeat(64)).length, 1);
    rpc(() => parseSexpr('(' + 'a '.repeat(1000) + ')', { maxNodes: 500 }));
    rpc(() => parseSexpr('(' + 'x'.repeat(5000) + ')', { maxLength: 4096 }));
    // A long unterminated quoted string ends in an error, not a hang.
    rpc(() => parseSexpr("('" + 'a'.repeat(1_000_000)));
  });

  void it('survives random bytes: only typed errors or values', () => {
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const alphabet = `()'"\\ \nabx0-`;
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = Math.floor(rnd() * 40);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      try {
        const v = parseSexpr(s);
        assert.ok(typeof v === 'string' || Array.isArray(v));
      } catch (e) {
        assert.ok(isVirtError(e, 'VIRT_ERR_RPC'), `input ${JSON.stringify(s)} threw ${String(e)}`);
      }
    }
  });
});

void describe('S-expression serializer', () => {
  void it('prints plain atoms bare and quotes the rest as Xend does', () => {
    assert.equal(serializeSexpr(['vm', ['name', 'web-1'], ['uuid', '5b1f3a52-8c7d-4e2a-9f61-0c1d2e3f4a5b'], ['kernel', '/boot/vmlinuz~1']]), '(vm (name web-1) (uuid 5b1f3a52-8c7d-4e2a-9f61-0c1d2e3f4a5b) (kernel /boot/vmlinuz~1))');
    assert.equal(serializeSexpr(['args', 'a b']), "(args 'a b')");
    assert.equal(serializeSexpr("it's"), `"it's"`);
    assert.equal(serializeSexpr(`'both" `), `'\\'both" '`);
    assert.equal(serializeSexpr(''), "''");
    assert.equal(serializeSexpr([]), '()');
  });

  void it('round-trips awkward strings', () => {
    const values: Sexpr[] = [['x', "a'b", 'c"d', 'e\\f', 'g h', 'new\nline', 'tab\t', '\x01ctl', '(p)', 'é', '']];
    for (const v of values) assert.deepEqual(parseSexpr(serializeSexpr(v)), v);
  });
});

void describe('S-expression list read element by element', () => {
  const text = `((domain (name a) (args 'x \\' y')) (domain (name b)) plain "q")`;
  void it('hands each element over as parseSexpr would have it', () => {
    const seen: Sexpr[] = [];
    const out = parseSexprListEach(text, (x) => (seen.push(x), typeof x === 'string' ? x : nodeValue(x, 'name')));
    assert.deepEqual(seen, parseSexpr(text));
    assert.deepEqual(out, ['a', 'b', 'plain', 'q']);
    assert.deepEqual(parseSexprListEach('()', (x) => x), []);
  });
  for (const [what, bad] of [
    ['an atom instead of a list', 'atom'],
    ['an unterminated list', '((a) (b)'],
    ['trailing data', '((a)) (b)'],
    ['nesting past the limit (the outer list counts)', '((((x))))'],
  ] as const) {
    void it(`refuses ${what} (VIRT_ERR_RPC)`, () => {
      assert.throws(() => parseSexprListEach(bad, (x) => x, { maxDepth: 3 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
    });
  }
  void it('an exception from the element callback passes through', () => {
    assert.throws(() => parseSexprListEach('((a))', () => { throw new Error('mine'); }), /mine/);
  });
});

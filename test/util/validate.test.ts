import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateDefinition } from '../../src/qemud/definition.ts';
import { domainKey } from '../../src/http/admin/validate.ts';
import { asNumber, asObject, asString, isDomainName, isUuid } from '../../src/util/validate.ts';
import { isVirtError } from '../../src/virt/errors.ts';

const NAMES_OK = ['a', 'web-1', 'db.prod', 'x_y', 'c++', '9lives', 'A'.repeat(64)];
const NAMES_BAD = ['', '-a', '.hidden', '_x', 'a b', 'a/b', '../x', 'a,b', 'ä', 'A'.repeat(65)];

void describe('one domain-name and UUID rule', () => {
  void it('names and UUIDs are told apart the same way everywhere', () => {
    for (const n of NAMES_OK) assert.ok(isDomainName(n), n);
    for (const n of NAMES_BAD) assert.ok(!isDomainName(n), n);
    assert.ok(isUuid('0F8FAD5B-D9CB-469F-A165-70867728950E'));
    for (const u of ['0f8fad5b-d9cb-469f-a165-70867728950', '0f8fad5bd9cb469fa16570867728950e', 'g f8fad5b-d9cb-469f-a165-70867728950e']) assert.ok(!isUuid(u), u);
  });
  void it('the admin API and virt-qemud accept and refuse the same names', () => {
    const def = (name: string): unknown => ({ name, memoryMiB: 64, vcpus: 1 });
    for (const n of NAMES_OK) {
      assert.equal(domainKey(n), n);
      assert.equal(validateDefinition(def(n)).name, n);
    }
    for (const n of NAMES_BAD.filter((x) => x !== '')) {
      assert.throws(() => domainKey(n), (e: unknown) => isVirtError(e, 'VIRT_ERR_INVALID_ARG'), n);
      assert.throws(() => validateDefinition(def(n)), (e: unknown) => isVirtError(e), n);
    }
  });
  void it('validators throw VirtError (VIRT_ERR_XML_ERROR) naming the path', () => {
    assert.throws(() => asObject([], 'domains[0]'), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR') && /^domains\[0\]: /.test((e as Error).message));
    assert.throws(() => asNumber(5, 'x', { max: 4 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR'));
    assert.throws(() => asString('a b', 'name', { pattern: /^\S+$/ }), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR'));
  });
});

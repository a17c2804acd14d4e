import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES, isVirtError, toVirtError, VirtError } from '../../src/virt/errors.ts';
import type * as Errors from '../../src/virt/errors.ts';

void describe('VirtError', () => {
  void it('is recognised by code, and across module copies (bin/ may load build/ while a caller loads src/)', async () => {
    const e = new VirtError('VIRT_ERR_RPC', 'bad frame');
    assert.ok(isVirtError(e));
    assert.ok(isVirtError(e, 'VIRT_ERR_RPC'));
    assert.ok(!isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
    // A second copy of the module: its class is another class, the brand is the same.
    const copy = (await import(`../../src/virt/errors.ts?copy=${Date.now()}`)) as typeof Errors;
    assert.notEqual(copy.VirtError, VirtError);
    const foreign = new copy.VirtError('VIRT_ERR_NO_DOMAIN', 'gone');
    assert.ok(!(foreign instanceof VirtError));
    assert.ok(isVirtError(foreign, 'VIRT_ERR_NO_DOMAIN'));
    assert.equal(toVirtError(foreign), foreign, 'kept, not wrapped');
  });

  void it('is not fooled by plain errors or look-alikes without the brand', () => {
    assert.ok(!isVirtError(new Error('x')));
    assert.ok(!isVirtError({ code: 'VIRT_ERR_RPC', message: 'x' }));
    assert.ok(!isVirtError(null));
    assert.equal(toVirtError(new TypeError('boom')).code, 'VIRT_ERR_INTERNAL_ERROR');
  });

  void it('has a closed-connection code of its own, as libvirt has', () => {
    assert.ok('VIRT_ERR_INVALID_CONN' in ERROR_CODES);
  });
});

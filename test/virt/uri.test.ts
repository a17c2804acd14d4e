import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVirtError } from '../../src/virt/errors.ts';
import { parseUri } from '../../src/virt/uri.ts';

describe('parseUri', () => {
  it('accepts the documented forms', () => {
    assert.deepEqual(parseUri('test:///default'), { text: 'test:///default', scheme: 'test', path: '/default' });
    assert.equal(parseUri('test:///srv/hosts/lab.json').path, '/srv/hosts/lab.json');
    assert.equal(parseUri('xen:///').scheme, 'xen');
    assert.equal(parseUri('xen:///system').path, '/');
    assert.equal(parseUri('qemu:///system').path, '/system');
    assert.equal(parseUri(' qemu:///session ').path, '/session');
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['nonsense', /SCHEME:\/\/\/PATH/],
    ['vmware:///', /unknown driver "vmware"/],
    ['qemu://remote.example/system', /remote host "remote.example"/],
    ['qemu:///', /\/system or \/session/],
    ['qemu:///system?socket=/x', /query strings/],
    ['test:relative.json', /SCHEME:\/\/\/PATH/],
    ['test:///etc/passwd', /\.json/],
    ['test:///a/../b.json', /\.\./],
    ['xen:///other', /only xen:\/\/\//],
    ['test:///def\u0001ault', /control characters/],
    ['x'.repeat(5000), /4096/],
  ];
  for (const [uri, reason] of bad) {
    it(`rejects ${JSON.stringify(uri.slice(0, 40))} naming the accepted forms`, () => {
      assert.throws(
        () => parseUri(uri),
        (err: unknown) => {
          assert.ok(isVirtError(err, 'VIRT_ERR_INVALID_URI'), String(err));
          assert.match(err.message, reason);
          assert.match(err.message, /accepted forms: test:\/\/\/default/);
          return true;
        },
      );
    });
  }
});

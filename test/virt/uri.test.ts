import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVirtError } from '../../src/virt/errors.ts';
import { parseUri } from '../../src/virt/uri.ts';

void describe('parseUri', () => {
  void it('accepts the documented forms', () => {
    assert.deepEqual(parseUri('test:///default'), { text: 'test:///default', scheme: 'test', path: '/default' });
    assert.equal(parseUri('test:///srv/hosts/lab.json').path, '/srv/hosts/lab.json');
    assert.equal(parseUri('xen:///').scheme, 'xen');
    assert.equal(parseUri('xen:///system').path, '/');
    assert.equal(parseUri('qemu:///system').path, '/system');
    assert.equal(parseUri(' qemu:///session ').path, '/session');
    assert.deepEqual(parseUri('libvirt+qemu:///system'), { text: 'libvirt+qemu:///system', scheme: 'libvirt', path: '/system', libvirt: { hypervisor: 'qemu' } });
    assert.deepEqual(parseUri('libvirt+qemu:///session?socket=/run/user/1/libvirt/virtqemud-sock').libvirt, { hypervisor: 'qemu', socket: '/run/user/1/libvirt/virtqemud-sock' });
    assert.equal(parseUri('libvirt+xen:///system').libvirt?.hypervisor, 'xen');
    assert.equal(parseUri('libvirt+test:///default?socket=/tmp/x/libvirt-sock').libvirt?.socket, '/tmp/x/libvirt-sock');
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['nonsense', /SCHEME:\/\/\/PATH/],
    ['vmware:///', /unknown driver "vmware"/],
    ['qemu://remote.example/system', /remote host "remote.example"/],
    ['qemu:///', /\/system or \/session/],
    ['qemu:///system?socket=/x', /query strings/],
    ['libvirt+vbox:///session', /not one of qemu, xen, test/],
    ['libvirt+qemu:///default', /\/system or \/session/],
    ['libvirt+xen:///session', /takes \/system/],
    ['libvirt+qemu:///system?socket=rel/sock', /absolute path/],
    ['libvirt+qemu:///system?socket=/a/../b', /absolute path/],
    ['libvirt+qemu:///system?mode=direct', /only socket=PATH/],
    ['libvirt+qemu:///system#frag', /fragments/],
    ['test:relative.json', /SCHEME:\/\/\/PATH/],
    ['test:///etc/passwd', /\.json/],
    ['test:///a/../b.json', /\.\./],
    ['xen:///other', /only xen:\/\/\//],
    ['test:///def\u0001ault', /control characters/],
    ['x'.repeat(5000), /4096/],
  ];
  for (const [uri, reason] of bad) {
    void it(`rejects ${JSON.stringify(uri.slice(0, 40))} naming the accepted forms`, () => {
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

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDomainXml, parseMetadataRules } from '../../../src/drivers/libvirt/domxml.ts';
import { chooseSocket } from '../../../src/drivers/libvirt/sockets.ts';
import { split } from '../../../src/drivers/libvirt/bulk.ts';
import { isVirtError } from '../../../src/virt/errors.ts';

void describe('libvirt socket choice', () => {
  const has = (...paths: string[]) => (p: string): boolean => paths.includes(p);
  void it('reads from the read-only socket, writes on the read-write one, modular daemons first', () => {
    assert.equal(chooseSocket('qemu', '/system', true, { exists: has('/run/libvirt/virtqemud-sock-ro', '/run/libvirt/libvirt-sock-ro') }).path, '/run/libvirt/virtqemud-sock-ro');
    assert.equal(chooseSocket('qemu', '/system', true, { exists: has('/run/libvirt/libvirt-sock-ro') }).path, '/run/libvirt/libvirt-sock-ro');
    assert.equal(chooseSocket('qemu', '/system', false, { exists: has('/run/libvirt/libvirt-sock') }).path, '/run/libvirt/libvirt-sock');
    assert.equal(chooseSocket('xen', '/system', true, { exists: has('/run/libvirt/virtxend-sock-ro') }).path, '/run/libvirt/virtxend-sock-ro');
    assert.equal(chooseSocket('test', '/default', true, { exists: has('/run/libvirt/virtqemud-sock-ro') }).path, '/run/libvirt/libvirt-sock-ro');
    const none = chooseSocket('qemu', '/system', true, { exists: has() });
    assert.equal(none.path, '/run/libvirt/libvirt-sock-ro');
    assert.match(none.reason, /none of/);
    assert.equal(chooseSocket('qemu', '/session', true, { exists: has(), env: { XDG_RUNTIME_DIR: '/run/user/7' } }).path, '/run/user/7/libvirt/libvirt-sock');
  });
  void it('?socket= serves both: its -ro sibling for reads when there is one, the plain one for writes', () => {
    assert.equal(chooseSocket('qemu', '/system', true, { explicit: '/x/libvirt-sock', exists: has('/x/libvirt-sock-ro') }).path, '/x/libvirt-sock-ro');
    assert.equal(chooseSocket('qemu', '/system', true, { explicit: '/x/libvirt-sock', exists: has() }).path, '/x/libvirt-sock');
    assert.equal(chooseSocket('qemu', '/system', false, { explicit: '/x/libvirt-sock-ro', exists: has() }).path, '/x/libvirt-sock');
    assert.equal(chooseSocket('qemu', '/system', true, { explicit: '/x/other', exists: has() }).path, '/x/other');
  });
});

const NOVA = `<domain type='kvm'><name>i</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid><memory unit='KiB'>65536</memory><vcpu>2</vcpu>
<metadata><n:instance xmlns:n="http://openstack.org/xmlns/libvirt/nova/1.1"><n:name>web-1</n:name><n:flavor name="m1.small"/>
<n:owner><n:user uuid="u-1">alice</n:user><n:project uuid="p-1">demo</n:project></n:owner></n:instance>
<o:x xmlns:o="http://example.com/other"><o:team>blue</o:team></o:x></metadata>
<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
<devices><interface type='user'><mac address='52:54:00:AA:00:01'/><alias name='net0'/></interface>
<interface type='ethernet'><mac address='52:54:00:aa:00:02'/><target dev='tap9'/></interface></devices></domain>`;

void describe('libvirt domain XML', () => {
  void it('picks descriptive facts, NICs and <metadata> labels by namespace URI (not prefix)', () => {
    const rules = parseMetadataRules('team=http://example.com/other x/team; missing=http://example.com/other x/nothere@a', 'nova-1.1');
    const m = parseDomainXml(NOVA, rules);
    assert.equal(m.osType, 'hvm');
    assert.equal(m.arch, 'x86_64');
    assert.equal(m.machine, 'pc-i440fx-7.2');
    assert.equal(m.maxMemoryBytes, 64 * 1024 * 1024);
    assert.equal(m.vcpus, 2);
    assert.deepEqual(m.interfaces, [{ type: 'user', alias: 'net0', mac: '52:54:00:aa:00:01' }, { type: 'ethernet', target: 'tap9', mac: '52:54:00:aa:00:02' }]);
    assert.deepEqual(Object.fromEntries(rules.map((r, i) => [r.label, m.labels[i]])), {
      instance_name: 'web-1', flavor: 'm1.small', project_id: 'p-1', project_name: 'demo', user_id: 'u-1', user_name: 'alice', team: 'blue', missing: '',
    });
    // The 1.0 preset does not match 1.1 elements: empty labels, never a failure.
    const old = parseMetadataRules('', 'nova-1.0');
    assert.deepEqual(parseDomainXml(NOVA, old).labels, ['', '', '', '', '', '']);
  });
  void it('refuses bad label specs as configuration errors', () => {
    for (const bad of ['x', 'uuid=http://a b', 'a=http://a b; a=http://a c', '9x=http://a b']) {
      assert.throws(() => parseMetadataRules(bad), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'), bad);
    }
    assert.throws(() => parseMetadataRules('', 'nova-9'), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
  });
});

void describe('libvirt bulk read: domain subsets for the concurrent stats calls', () => {
  void it('splits in order into at most n nearly equal, non-empty parts', () => {
    assert.deepEqual(split([], 4), []);
    assert.deepEqual(split([1], 4), [[1]]);
    assert.deepEqual(split([1, 2, 3], 4), [[1], [2], [3]]);
    assert.deepEqual(split([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 4), [[1, 2, 3], [4, 5, 6], [7, 8], [9, 10]]);
    for (let n = 0; n < 70; n++) {
      const xs = Array.from({ length: n }, (_, i) => i);
      const parts = split(xs, 4);
      assert.deepEqual(parts.flat(), xs);
      assert.ok(parts.length <= 4 && parts.every((p) => p.length > 0));
      const sizes = parts.map((p) => p.length);
      assert.ok(sizes.length === 0 || Math.max(...sizes) - Math.min(...sizes) <= 1);
    }
  });
});

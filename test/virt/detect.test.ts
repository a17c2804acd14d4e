import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectHost, type DetectProbe } from '../../src/virt/detect.ts';

function probe(files: Record<string, string>, env: NodeJS.ProcessEnv = { VIRT_EXPORTER_RUNTIME_DIR: '/rt' }): DetectProbe {
  return { exists: (p) => p in files, read: (p) => files[p], env };
}

void describe('detectHost', () => {
  void it('prefers Xen when /sys/hypervisor/type says so', () => {
    const d = detectHost(probe({ '/sys/hypervisor/type': 'xen\n', '/run/virt-exporter/qemu/virt-qemud-sock-ro': '' }));
    assert.equal(d.uri, 'xen:///');
    assert.match(d.reason, /hypervisor\/type/);
  });
  void it('sees Xen from /proc/xen', () => {
    assert.equal(detectHost(probe({ '/proc/xen/capabilities': 'control_d' })).uri, 'xen:///');
  });
  void it('finds a system virt-qemud, then a session one', () => {
    assert.equal(detectHost(probe({ '/sys/hypervisor/type': 'kvm', '/run/virt-exporter/qemu/virt-qemud-sock-ro': '' })).uri, 'qemu:///system');
    assert.equal(detectHost(probe({ '/rt/qemu/virt-qemud-sock-ro': '' })).uri, 'qemu:///session');
  });
  void it('finds a libvirt daemon, modular first, after virt-qemud', () => {
    const modular = detectHost(probe({ '/run/libvirt/virtqemud-sock-ro': '', '/run/libvirt/libvirt-sock-ro': '' }));
    assert.equal(modular.uri, 'libvirt+qemu:///system');
    assert.match(modular.reason, /virtqemud-sock-ro/);
    const mono = detectHost(probe({ '/run/libvirt/libvirt-sock-ro': '' }));
    assert.equal(mono.uri, 'libvirt+qemu:///system');
    assert.match(mono.reason, /libvirtd.*libvirt-sock-ro/);
    assert.equal(detectHost(probe({ '/run/virt-exporter/qemu/virt-qemud-sock-ro': '', '/run/libvirt/libvirt-sock-ro': '' })).uri, 'qemu:///system');
  });
  void it('falls back to the embedded test host and says why', () => {
    const d = detectHost(probe({}));
    assert.equal(d.uri, 'test:///default');
    assert.match(d.reason, /no Xen and no virt-qemud/);
  });
});

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { validateDefinition } from '../../src/qemud/definition.ts';
import { buildCommand } from '../../src/qemud/qemu-args.ts';

const base = { name: 'web-1', memoryMiB: 256, vcpus: 2 };

void it('defaults are filled in and a UUID is generated', () => {
  const d = validateDefinition({ ...base, disks: [{ path: '/img/a.qcow2', format: 'qcow2' }, { path: '/img/b.raw', bus: 'ide' }], nics: [{ type: 'user' }] });
  assert.match(d.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(d.arch, 'x86_64');
  assert.equal(d.machine, 'pc');
  assert.equal(d.accel, 'auto');
  assert.deepEqual(d.disks.map((x) => [x.target, x.format, x.bus]), [['vda', 'qcow2', 'virtio'], ['hda', 'raw', 'ide']]);
  assert.equal(d.nics[0]?.model, 'virtio-net-pci');
  assert.match(d.nics[0]?.mac ?? '', /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(d.balloon.enabled, true);
  // The same UUID derives the same MAC.
  assert.equal(validateDefinition({ ...base, uuid: d.uuid, nics: [{ type: 'user' }] }).nics[0]?.mac, d.nics[0]?.mac);
});

void it('unknown keys are refused with an error naming them', () => {
  assert.throws(() => validateDefinition({ ...base, memory: 5 }), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_XML_ERROR' && e.message.includes('"memory"'));
  assert.throws(() => validateDefinition({ ...base, disks: [{ path: '/a', cache: 'none' }] }), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_XML_ERROR' && e.message.includes('disks[0].cache'));
  assert.throws(() => validateDefinition({ ...base, kernel: { path: '/k', append: 'x' } }), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_XML_ERROR' && e.message.includes('kernel.append'));
});

void it('bad values are refused with the key named', () => {
  const cases: [unknown, string][] = [
    [{ ...base, name: '-bad' }, 'name'],
    [{ ...base, name: 'a'.repeat(65) }, 'name'],
    [{ memoryMiB: 1, vcpus: 1 }, 'name'],
    [{ ...base, memoryMiB: 1.5 }, 'memoryMiB'],
    [{ ...base, vcpus: 0 }, 'vcpus'],
    [{ ...base, uuid: 'nope' }, 'uuid'],
    [{ ...base, accel: 'hvf' }, 'accel'],
    [{ ...base, arch: 'aarch64' }, 'arch'],
    [{ ...base, disks: [{ path: 'relative.img' }] }, 'disks[0].path'],
    [{ ...base, disks: [{ path: '/a/../b' }] }, 'disks[0].path'],
    [{ ...base, disks: [{ path: '/a,b' }] }, 'disks[0].path'],
    [{ ...base, disks: [{ path: '/a', format: 'vmdk' }] }, 'disks[0].format'],
    [{ ...base, disks: [{ path: '/a', target: 'vda' }, { path: '/b', target: 'vda' }] }, 'disks[1].target'],
    [{ ...base, disks: [{ path: '/a', bus: 'ide', target: 'vda' }] }, 'disks[0].target'],
    [{ ...base, nics: [{ type: 'tap' }] }, 'nics[0].ifname'],
    [{ ...base, nics: [{ type: 'bridge' }] }, 'nics[0].type'],
    [{ ...base, nics: [{ type: 'tap', ifname: 'tap0', mac: 'zz' }] }, 'nics[0].mac'],
    [{ ...base, nics: [{ type: 'tap', ifname: 'a', netns: 'x' }, { type: 'tap', ifname: 'b', netns: 'y' }] }, 'nics'],
    [{ ...base, balloon: { enabled: 'yes' } }, 'balloon.enabled'],
    [{ ...base, console: { logFile: 'rel.log' } }, 'console.logFile'],
    ['just a string', 'definition'],
  ];
  for (const [input, key] of cases) {
    assert.throws(() => validateDefinition(input), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_XML_ERROR' && e.message.includes(key), `expected an error naming ${key} for ${JSON.stringify(input)}`);
  }
});

void it('the QEMU command line carries the definition', () => {
  const d = validateDefinition({
    ...base,
    uuid: '11111111-2222-3333-4444-555555555555',
    kernel: { path: '/boot/vmlinuz', initrd: '/boot/initrd', cmdline: 'console=ttyS0 nokaslr' },
    disks: [{ path: '/img/a.qcow2', format: 'qcow2', readonly: true }],
    nics: [{ type: 'tap', ifname: 'vt0', netns: 'testns', model: 'e1000', mac: '52:54:00:aa:bb:cc' }],
    balloon: { statsIntervalSeconds: 2 },
  });
  const c = buildCommand(d, { qmpSocket: '/run/q.sock', pidFile: '/run/q.pid', consoleLog: '/run/c.log', accel: 'tcg', balloonStatsIntervalSeconds: 5 });
  assert.equal(c.file, 'ip');
  assert.deepEqual(c.args.slice(0, 4), ['netns', 'exec', 'testns', 'qemu-system-x86_64']);
  const line = c.args.join(' ');
  for (const part of [
    '-machine pc,accel=tcg',
    '-m 256M',
    '-smp 2',
    '-no-shutdown',
    '-kernel /boot/vmlinuz',
    '-initrd /boot/initrd',
    '-append console=ttyS0 nokaslr',
    'node-name=fmt-vda,read-only=on',
    'virtio-blk-pci,drive=fmt-vda,id=vda',
    'tap,id=net0,ifname=vt0,script=no,downscript=no',
    'e1000,netdev=net0,mac=52:54:00:aa:bb:cc',
    'virtio-balloon-pci,id=balloon0,guest-stats-polling-interval=2',
    'socket,id=qmp,path=/run/q.sock,server=on,wait=off',
  ]) {
    assert.ok(line.includes(part), `command line lacks ${part}: ${line}`);
  }
  const noBalloon = buildCommand(validateDefinition({ ...base, balloon: { enabled: false } }), { qmpSocket: '/q', pidFile: '/p', consoleLog: '/c', accel: 'kvm', balloonStatsIntervalSeconds: 5 });
  assert.equal(noBalloon.file, 'qemu-system-x86_64');
  assert.ok(!noBalloon.args.join(' ').includes('balloon'));
});

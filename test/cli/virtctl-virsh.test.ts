// virtctl as a virsh user expects it, over the test driver: domstats keys and
// units, dominfo's fields, list sorted by id with a Name column that fits,
// aliases, one-line errors with a suggestion, shutdown that returns at once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ERROR_CODES } from '../../src/virt/errors.ts';
import { ROOT } from '../helpers/exporter.ts';

function virtctl(...args: string[]) {
  const r = spawnSync(`${ROOT}bin/virtctl`, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, VIRT_EXPORTER_CONNECT: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function keys(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const x = /^ {2}([^=]+)=(.*)$/.exec(line);
    if (x !== null) m.set(x[1] ?? '', x[2] ?? '');
  }
  return m;
}

void describe('virtctl speaks virsh', () => {
  let dir: string;
  let uri: string;
  const LONG = 'a-domain-with-a-name-much-longer-than-twenty-four';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtctl-virsh-'));
    const host = join(dir, 'host.json');
    await writeFile(host, JSON.stringify({
      domains: [
        { name: 'zulu', uuid: '0b4c6a52-8f1e-4f0a-9d3c-2a1b3c4d5e6f', memoryMiB: 512, vcpus: 2, disks: [{ path: '/img/z.qcow2' }], nics: [{}] },
        { name: LONG, memoryMiB: 256, vcpus: 1 },
        { name: 'alpha', state: 'shutoff', memoryMiB: 128, vcpus: 1 },
      ],
    }));
    uri = `test://${host}`;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('domstats prints virsh keys with virsh units (ns, KiB, bytes)', () => {
    const r = virtctl('-c', uri, 'domstats', 'zulu');
    assert.equal(r.code, 0, r.stderr);
    const k = keys(r.stdout);
    const info = JSON.parse(virtctl('-c', uri, '--json', 'dominfo', 'zulu').stdout) as { cpuTimeSeconds: number; maxMemoryBytes: number };
    assert.equal(k.get('state.state'), '1');
    // Two processes, two readings of a simulated host whose CPU time advances: close, in ns.
    const ns = Number(k.get('cpu.time'));
    assert.ok(Number.isInteger(ns) && Math.abs(ns / 1e9 - info.cpuTimeSeconds) < 0.01 * info.cpuTimeSeconds + 1, `cpu.time=${ns} ns vs ${info.cpuTimeSeconds} s`);
    assert.equal(k.get('balloon.maximum'), String(info.maxMemoryBytes / 1024));
    assert.ok(k.has('balloon.current'));
    assert.equal(k.get('vcpu.current'), '2');
    assert.match(k.get('vcpu.0.time') ?? '', /^\d+$/);
    assert.equal(k.get('block.count'), '1');
    assert.equal(k.get('block.0.name'), 'vda');
    assert.equal(k.get('block.0.path'), '/img/z.qcow2');
    assert.match(k.get('block.0.rd.bytes') ?? '', /^\d+$/);
    assert.match(k.get('block.0.wr.reqs') ?? '', /^\d+$/);
    assert.equal(k.get('net.count'), '1');
    assert.match(k.get('net.0.rx.bytes') ?? '', /^\d+$/);
    assert.match(k.get('net.0.tx.pkts') ?? '', /^\d+$/);
  });

  void it('dominfo has virsh\'s fields, memory in KiB', () => {
    const r = virtctl('-c', uri, 'dominfo', 'zulu');
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['Id', 'Name', 'UUID', 'OS Type', 'State', 'CPU\\(s\\)', 'CPU time', 'Max memory', 'Used memory', 'Persistent', 'Autostart', 'Managed save']) {
      assert.match(r.stdout, new RegExp(`^${f}:\\s+\\S`, 'm'), f);
    }
    assert.match(r.stdout, /^Max memory:\s+524288 KiB$/m);
    assert.match(r.stdout, /^State:\s+running$/m);
  });

  void it('list is sorted by id, shut-off domains last, and long names keep the columns aligned', () => {
    const r = virtctl('-c', uri, 'list', '--all');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ Id\s+Name\s+State$/);
    const body = lines.slice(2);
    assert.deepEqual(body.map((l) => l.trim().split(/\s+/)[1]), ['zulu', LONG, 'alpha']);
    const stateCol = (lines[0] ?? '').indexOf('State');
    for (const l of body) assert.ok(/^(running|shut off|paused)/.test(l.slice(stateCol)), `misaligned: ${JSON.stringify(l)}`);
    assert.match(body[2] ?? '', /^ -\s+alpha\s+shut off$/);
    const inactive = virtctl('-c', uri, 'list', '--inactive');
    assert.deepEqual(inactive.stdout.trimEnd().split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1]), ['alpha']);
  });

  void it('virsh aliases: domstate [--reason], domid, domuuid, domname, dumpdef', () => {
    assert.equal(virtctl('-c', uri, 'domstate', 'alpha').stdout, 'shut off\n');
    assert.match(virtctl('-c', uri, 'domstate', 'zulu', '--reason').stdout, /^running \(\S+\)\n$/);
    assert.equal(virtctl('-c', uri, 'domid', 'zulu').stdout, '1\n');
    assert.equal(virtctl('-c', uri, 'domid', 'alpha').stdout, '-\n');
    const uuid = virtctl('-c', uri, 'domuuid', 'zulu').stdout.trim();
    assert.equal(uuid, '0b4c6a52-8f1e-4f0a-9d3c-2a1b3c4d5e6f');
    assert.equal(virtctl('-c', uri, 'domname', uuid).stdout, 'zulu\n');
    const def = JSON.parse(virtctl('-c', uri, 'dumpdef', 'zulu').stdout) as { name: string };
    assert.equal(def.name, 'zulu');
  });

  void it('a mistyped command or option gets one line with a suggestion, not the usage', () => {
    for (const [args, hint] of [[['lsit'], 'did you mean list'], [['list', '--al'], 'did you mean --all'], [['dominfo', 'zulu', '--reason'], '--reason goes with domstate']] as const) {
      const r = virtctl('-c', uri, ...args);
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_INVALID_ARG.exit);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.includes(hint), r.stderr);
    }
  });

  void it('shutdown returns once the request is sent; --wait blocks until it is off', () => {
    const r = virtctl('-c', uri, 'shutdown', 'zulu');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Domain 'zulu' is being shutdown\n");
    const w = virtctl('-c', uri, '--json', 'shutdown', 'zulu', '--wait=5');
    assert.equal(w.code, 0, w.stderr);
    assert.equal((JSON.parse(w.stdout) as { waited: boolean }).waited, true);
    assert.equal(virtctl('-c', uri, 'shutdown', 'zulu', '--wait=soon').code, ERROR_CODES.VIRT_ERR_INVALID_ARG.exit);
  });
});

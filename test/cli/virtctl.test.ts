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

void describe('bin/virtctl over the test driver', () => {
  let dir: string;
  let hostUri: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtctl-'));
    const host = join(dir, 'host.json');
    await writeFile(host, JSON.stringify({ domains: [{ name: 'alpha', memoryMiB: 512, vcpus: 2, disks: [{ path: '/img/a.qcow2' }], nics: [{}] }, { name: 'beta', state: 'shutoff', memoryMiB: 256, vcpus: 1 }] }));
    hostUri = `test://${host}`;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('list shows running domains, --all adds shut-off ones, --json is machine-readable', () => {
    const plain = virtctl('--connect', hostUri, 'list');
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /alpha\s+running/);
    assert.doesNotMatch(plain.stdout, /beta/);
    const all = virtctl('-c', hostUri, 'list', '--all', '--json');
    assert.equal(all.code, 0);
    const rows = JSON.parse(all.stdout) as Array<{ name: string; state: string; id: number | null }>;
    assert.deepEqual(rows.map((r) => [r.name, r.state]), [['alpha', 'running'], ['beta', 'shutoff']]);
    assert.equal(rows[1]?.id, null);
  });

  void it('dominfo and domstats read one domain', () => {
    const info = virtctl('--connect', hostUri, '--json', 'dominfo', 'alpha');
    assert.equal(info.code, 0);
    const parsed = JSON.parse(info.stdout) as { state: string; maxMemoryBytes: number; vcpus: number };
    assert.equal(parsed.state, 'running');
    assert.equal(parsed.maxMemoryBytes, 512 * 1024 * 1024);
    assert.equal(parsed.vcpus, 2);
    // --friendly: readings by device name in seconds and bytes (the default is virsh's keys, test/cli/virtctl-virsh.test.ts).
    const stats = virtctl('--connect', hostUri, 'domstats', 'alpha', '--friendly');
    assert.equal(stats.code, 0);
    assert.match(stats.stdout, /Domain: 'alpha'/);
    assert.match(stats.stdout, /block\.vda\.readBytes=\d+/);
    assert.match(stats.stdout, /net\.vnet0\.rxBytes=\d+/);
  });

  void it('lifecycle commands run (each virtctl process has its own test host) and wrong states carry their code', () => {
    assert.equal(virtctl('--connect', hostUri, 'suspend', 'alpha').code, 0);
    assert.equal(virtctl('--connect', hostUri, 'start', 'beta').code, 0);
    const again = virtctl('--connect', hostUri, 'start', 'alpha');
    assert.equal(again.code, ERROR_CODES.VIRT_ERR_OPERATION_INVALID.exit);
    assert.match(again.stderr, /VIRT_ERR_OPERATION_INVALID/);
    const destroyOff = virtctl('--connect', hostUri, '--json', 'destroy', 'beta');
    assert.equal(destroyOff.code, ERROR_CODES.VIRT_ERR_OPERATION_INVALID.exit);
    assert.equal((JSON.parse(destroyOff.stderr) as { code: string }).code, 'VIRT_ERR_OPERATION_INVALID');
  });

  void it('define reads a JSON file and reports bad ones with their code', async () => {
    const good = join(dir, 'gamma.json');
    await writeFile(good, JSON.stringify({ name: 'gamma', memoryMiB: 128, vcpus: 1 }));
    const ok = virtctl('--connect', hostUri, '--json', 'define', good);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { domain: { name: string } }).domain.name, 'gamma');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"name": "x", "memoryMiB": "much", "vcpus": 1}');
    const r = virtctl('--connect', hostUri, 'define', bad);
    assert.equal(r.code, ERROR_CODES.VIRT_ERR_XML_ERROR.exit);
    assert.match(r.stderr, /VIRT_ERR_XML_ERROR.*memoryMiB/);
    const missing = virtctl('--connect', hostUri, 'define', join(dir, 'nope.json'));
    assert.match(missing.stderr, /VIRT_ERR_XML_ERROR.*cannot read definition/);
  });

  void it('refuses bad usage, unknown domains and bad URIs with their codes', () => {
    for (const args of [[], ['frobnicate'], ['dominfo'], ['list', 'extra'], ['--bogus', 'list'], ['dominfo', 'a', '--force']]) {
      const r = virtctl('--connect', hostUri, ...args);
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_INVALID_ARG.exit, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /VIRT_ERR_INVALID_ARG/);
    }
    const none = virtctl('--connect', hostUri, 'dominfo', 'zeta');
    assert.equal(none.code, ERROR_CODES.VIRT_ERR_NO_DOMAIN.exit);
    const uri = virtctl('--connect', 'vmware:///', 'list');
    assert.equal(uri.code, ERROR_CODES.VIRT_ERR_INVALID_URI.exit);
    assert.match(uri.stderr, /VIRT_ERR_INVALID_URI.*accepted forms/);
    const ro = virtctl('--connect', hostUri, '--readonly', 'suspend', 'alpha');
    assert.equal(ro.code, ERROR_CODES.VIRT_ERR_OPERATION_DENIED.exit);
  });
});

// The Debian package, from this tree's one build (packaging/build-deb.sh),
// installed with dpkg into a fresh Debian root (mmdebstrap, cached): the
// system user exists, the files are where the docs say, and the exporter
// runs from the package as that user and serves /metrics.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { BUILD_INFO } from '../../src/version.ts';
import { parseMetrics, ROOT } from '../helpers/exporter.ts';
import { waitFor } from '../qemud/helpers.ts';
import { debianRootTarball } from './debian-root.ts';

const execFileP = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'deb-'));
const root = join(work, 'root');
let deb = '';
let procMounted = false;
let packagedRevision = '';

function chroot(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('chroot', [root, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test installs into a chroot and must run as root (as .ci/run does)');
  const [tar, built] = await Promise.all([debianRootTarball(), execFileP('sh', [join(ROOT, 'packaging', 'build-deb.sh'), join(work, 'out')], { timeout: 600_000 })]);
  deb = built.stdout.trim().split('\n').pop() ?? '';
  await execFileP('mkdir', [root]);
  await execFileP('tar', ['-C', root, '-xf', tar], { timeout: 300_000 });
  copyFileSync(deb, join(root, 'tmp', basename(deb)));
});

after(() => {
  if (procMounted) spawnSync('umount', ['-l', join(root, 'proc')]);
  rmSync(work, { recursive: true, force: true });
});

void describe('the Debian package in a fresh Debian root', { timeout: 900_000 }, () => {
  void it('installs with dpkg: executables, its own Node 22, units, default configuration, a system user', () => {
    const r = chroot(['dpkg', '-i', `/tmp/${basename(deb)}`]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const pw = chroot(['getent', 'passwd', 'virt-exporter']);
    assert.equal(pw.status, 0, 'no virt-exporter user');
    assert.match(pw.stdout, /^virt-exporter:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m);
    assert.ok(Number(pw.stdout.split(':')[2]) < 1000, 'a system user has a uid below 1000');
    // The unprivileged user a system virt-qemud runs QEMU as by default, and its default image directory.
    const qpw = chroot(['getent', 'passwd', 'virt-qemu']);
    assert.equal(qpw.status, 0, 'no virt-qemu user');
    assert.match(qpw.stdout, /^virt-qemu:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m);
    assert.ok(Number(qpw.stdout.split(':')[2]) < 1000 && Number(qpw.stdout.split(':')[2]) > 0, 'virt-qemu is a system user, not root');
    const images = statSync(join(root, 'var/lib/virt-exporter/images'));
    assert.deepEqual([images.isDirectory(), images.uid, images.mode & 0o777], [true, 0, 0o711]);
    for (const b of ['virt-exporter', 'virtctl', 'virt-qemud']) assert.ok(lstatSync(join(root, 'usr/bin', b)).isSymbolicLink(), b);
    assert.equal(readlinkSync(join(root, 'usr/bin/virt-exporter')), '../lib/virt-exporter/bin/virt-exporter');
    const node = chroot(['/usr/lib/virt-exporter/node_modules/.bin/node', '--version']);
    assert.match(node.stdout, /^v22\./);
    for (const u of ['virt-exporter.service', 'virt-exporter.socket', 'virt-qemud.service', 'virt-qemud.socket', 'virt-qemud-ro.socket']) assert.ok(existsSync(join(root, 'lib/systemd/system', u)), u);
    const conf = statSync(join(root, 'etc/virt-exporter/virt-exporter.yaml'));
    assert.equal(conf.mode & 0o777, 0o640);
    assert.ok(existsSync(join(root, 'etc/default/virt-exporter')));
    assert.match(chroot(['dpkg-query', '-W', '-f=${Conffiles}', 'virt-exporter']).stdout, /\/etc\/virt-exporter\/virt-exporter.yaml/);
    // Production dependencies only.
    assert.equal(existsSync(join(root, 'usr/lib/virt-exporter/node_modules/typescript')), false, 'dev dependencies were packaged');
    const info = JSON.parse(readFileSync(join(root, 'usr/lib/virt-exporter/build-info.json'), 'utf8')) as { version: string; revision: string };
    assert.equal(info.version, BUILD_INFO.version);
    assert.match(info.revision, /^[0-9a-f]{40}$/, 'the package records the git revision it was built from');
    packagedRevision = info.revision;
  });

  void it('runs the exporter from the package as the virt-exporter user; /metrics answers with the build\'s revision', async () => {
    spawnSync('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
    procMounted = true;
    const child = spawn('/usr/sbin/chroot', ['--userspec=virt-exporter:virt-exporter', root, '/usr/bin/virt-exporter', '--config=/etc/virt-exporter/virt-exporter.yaml', '--connect=test:///default', '--web.listen-address=127.0.0.1:0', '--log.format=json'], {
      env: { PATH: '/usr/bin:/bin', LANG: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log += s));
    child.stdout.setEncoding('utf8').on('data', (s: string) => (log += s));
    try {
      await waitFor(() => /"msg":"listening"/.test(log) || child.exitCode !== null, 60_000, 'the packaged exporter to listen');
      const port = /"msg":"listening","address":"[^"]*:(\d+)"/.exec(log)?.[1];
      assert.ok(port !== undefined, log);
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
      assert.equal(uid, chroot(['id', '-u', 'virt-exporter']).stdout.trim());
      assert.notEqual(uid, '0');
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      const build = parseMetrics(await res.text()).find((s) => s.name === 'virt_exporter_build_info');
      assert.equal(build?.labels['revision'], packagedRevision);
      assert.match(build?.labels['nodejs'] ?? '', /^22\./);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  });
});

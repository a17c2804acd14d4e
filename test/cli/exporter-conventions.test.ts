// Prometheus-ecosystem conventions of the exporter, end to end: repeated
// --web.listen-address, collect[] per scrape, --collector.disable-defaults,
// --web.systemd-socket under systemd-socket-activate, and start-up errors
// (admin and web configuration) reported before anything listens.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ERROR_CODES } from '../../src/virt/errors.ts';
import { parseMetrics, ROOT, startExporter } from '../helpers/exporter.ts';
import { waitFor } from '../qemud/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'exp-conv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

const families = (body: string): Set<string> => new Set(parseMetrics(body).map((s) => s.name));

function requireTool(name: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0) throw new Error(`${name} is not installed (Debian package ${pkg}, see .ci/apt-packages.txt)`);
}

void describe('exporter conventions', { timeout: 120_000 }, () => {
  void it('serves on every --web.listen-address given', async () => {
    const ex = await startExporter(['--connect=test:///default', '--web.listen-address=[::1]:0']);
    try {
      await waitFor(() => [...ex.log().matchAll(/"msg":"listening"/g)].length >= 2, 10_000, 'two listening lines');
      const ports = [...ex.log().matchAll(/"msg":"listening","address":"([^"]+)"/g)].map((m) => m[1] ?? '');
      assert.equal(ports.length, 2, ex.log());
      assert.match(ports[1] ?? '', /^\[::1\]:\d+$/);
      for (const a of ports) {
        const r = await get(`http://${a}/metrics`);
        assert.equal(r.status, 200);
        assert.ok(families(r.body).has('virt_domain_cpu_time_seconds_total'), `no domain metrics on ${a}`);
      }
    } finally {
      await ex.stop();
    }
  });

  void it('collect[] selects collectors per scrape; an unknown or disabled one is a 400', async () => {
    const ex = await startExporter(['--connect=test:///default', '--no-collector.network']);
    try {
      const all = families((await get(`${ex.url}/metrics`)).body);
      assert.ok(all.has('virt_domain_block_read_bytes_total') && all.has('virt_domain_cpu_time_seconds_total'));
      const some = families((await get(`${ex.url}/metrics?collect[]=cpu&collect[]=memory`)).body);
      assert.ok(some.has('virt_domain_cpu_time_seconds_total') && some.has('virt_domain_memory_maximum_bytes'));
      assert.equal(some.has('virt_domain_block_read_bytes_total'), false);
      assert.ok(some.has('virt_up'), 'the exporter\'s own metrics stay');
      // The unfiltered body is not spoiled by the filtered one (separate caches).
      assert.ok(families((await get(`${ex.url}/metrics`)).body).has('virt_domain_block_read_bytes_total'));
      for (const q of ['collect[]=bogus', 'collect[]=network']) {
        const r = await get(`${ex.url}/metrics?${q}`);
        assert.equal(r.status, 400, q);
      }
    } finally {
      await ex.stop();
    }
  });

  void it('--collector.disable-defaults keeps only the collectors enabled explicitly (flag or environment)', async () => {
    const ex = await startExporter(['--connect=test:///default', '--collector.disable-defaults', '--collector.memory'], { VIRT_EXPORTER_COLLECTOR_BLOCK: 'true' });
    try {
      const f = families((await get(`${ex.url}/metrics`)).body);
      assert.ok(f.has('virt_domain_memory_maximum_bytes') && f.has('virt_domain_block_read_bytes_total'));
      for (const absent of ['virt_domain_cpu_time_seconds_total', 'virt_domain_state', 'virt_host_cpus', 'virt_domain_network_receive_bytes_total']) assert.equal(f.has(absent), false, absent);
    } finally {
      await ex.stop();
    }
  });

  void it('--web.systemd-socket serves on the socket systemd-socket-activate passes, bound before the exporter runs', async () => {
    requireTool('systemd-socket-activate', 'systemd');
    const sock = join(dir, 'metrics.sock');
    const child = spawn('systemd-socket-activate', ['-l', sock, `${ROOT}bin/virt-exporter`, '--connect=test:///default', '--web.systemd-socket', '--log.format=json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log += s));
    try {
      // The socket exists before the exporter starts (the first connection starts it).
      await waitFor(() => /Listening on/.test(log), 15_000, 'systemd-socket-activate to listen');
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: sock, path: '/metrics' }, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (c: string) => (b += c)).on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(families(body).has('virt_domain_cpu_time_seconds_total'));
      assert.match(log, /"msg":"listening".*"systemdSocket":true/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  void it('start-up errors come before "listening": no systemd socket, a bad admin file, the admin API on the metrics port', () => {
    const bad = join(dir, 'admin.yaml');
    writeFileSync(bad, 'tokens: [ { name: x } ]\n');
    const cases: Array<[string[], RegExp]> = [
      [['--web.systemd-socket'], /LISTEN_FDS/],
      [['--admin.listen-address=127.0.0.1:0', '--admin.insecure-loopback', `--admin.config.file=${bad}`], /admin/],
      [['--web.listen-address=127.0.0.1:19477', '--admin.listen-address=127.0.0.1:19477', '--admin.insecure-loopback'], /metrics port/],
      [['--web.listen-address=127.0.0.1:80000'], /listen-address/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync(`${ROOT}bin/virt-exporter`, ['--connect=test:///default', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, LISTEN_FDS: '' } });
      assert.equal(r.status, ERROR_CODES.VIRT_ERR_CONFIG.exit, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /msg=listening/, `${args.join(' ')} listened before failing`);
    }
  });
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMetrics, startExporter, valueOf } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

function curl(args: string[]): Promise<{ code: number; status: string; body: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', '-o', '-', '-w', '\n%{http_code}', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout) => {
      const i = stdout.lastIndexOf('\n');
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), status: stdout.slice(i + 1), body: stdout.slice(0, i) });
    });
  });
}

void describe('the exporter with its admin endpoint and a secured /metrics (end to end)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-exporter-secured-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('an operator token changes a domain through the admin listener; the change shows in the next scrape; destroy is refused', async () => {
    const token = randomBytes(32).toString('hex');
    const audit = join(dir, 'audit.jsonl');
    const cfg = join(dir, 'admin.yaml');
    await writeFile(cfg, `tokens:\n  - name: ci-operator\n    role: operator\n    sha256: ${createHash('sha256').update(token).digest('hex')}\naudit_log: ${audit}\n`);
    const exp = await startExporter(['--connect=test:///default', '--admin.listen-address=127.0.0.1:0', '--admin.insecure-loopback', `--admin.config.file=${cfg}`]);
    try {
      let m: RegExpExecArray | null = null;
      for (let i = 0; i < 100 && m === null; i++) {
        m = /"msg":"admin endpoint listening","address":"[^"]+","port":(\d+)/.exec(exp.log());
        if (m === null) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(m, `admin listening line in the log:\n${exp.log()}`);
      const admin = `http://127.0.0.1:${m[1]}`;
      assert.notEqual(Number(m[1]), exp.port, 'admin is never on the metrics port');
      const auth = { authorization: `Bearer ${token}` };
      const suspend = await fetch(`${admin}/api/v1/domains/web-1/suspend`, { method: 'POST', headers: auth });
      assert.ok(suspend.status >= 200 && suspend.status < 300, `suspend answered ${suspend.status}: ${await suspend.text()}`);
      const samples = parseMetrics(await (await fetch(`${exp.url}/metrics`)).text());
      assert.equal(valueOf(samples, 'virt_domain_state', { domain: 'web-1', state: 'paused' }), 1);
      const destroy = await fetch(`${admin}/api/v1/domains/web-2/destroy`, { method: 'POST', headers: auth });
      assert.equal(destroy.status, 403);
      assert.match(destroy.headers.get('content-type') ?? '', /application\/problem\+json/);
      const anonymous = await fetch(`${admin}/api/v1/domains`);
      assert.equal(anonymous.status, 401);
      // The metrics listener has no admin routes.
      assert.equal((await fetch(`${exp.url}/api/v1/domains`)).status, 404);
      const after = parseMetrics(await (await fetch(`${exp.url}/metrics`)).text());
      assert.equal(valueOf(after, 'virt_domain_state', { domain: 'web-2', state: 'running' }), 1);
      assert.equal(valueOf(after, 'virt_admin_requests_total', { action: 'destroy', outcome: 'forbidden' }), 1);
      assert.equal(valueOf(after, 'virt_admin_requests_total', { action: 'suspend', outcome: 'ok' }), 1);
      const lines = (await readFile(audit, 'utf8')).trim().split('\n');
      assert.ok(lines.length >= 3);
      assert.ok(!lines.join('\n').includes(token), 'no token in the audit log');
    } finally {
      const code = await exp.stop();
      assert.equal(code, 0, exp.log());
    }
  });

  void it('/metrics behind TLS and basic auth from --web.config.file: 401 without credentials, 200 with them, via curl --cacert', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.crt')], { stdio: 'ignore' });
    const hash = execFileSync('htpasswd', ['-nbB', '-C', '5', 'prom', 's3cret'], { encoding: 'utf8' }).trim().split(':')[1];
    const web = join(dir, 'web.yaml');
    await writeFile(web, `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: ${hash}\n`);
    const exp = await startExporter(['--connect=test:///default', `--web.config.file=${web}`]);
    try {
      const url = `https://127.0.0.1:${exp.port}/metrics`;
      const ca = ['--cacert', join(dir, 'server.crt')];
      assert.equal((await curl([...ca, url])).status, '401');
      assert.equal((await curl([...ca, '-u', 'prom:wrong', url])).status, '401');
      const ok = await curl([...ca, '-u', 'prom:s3cret', url]);
      assert.equal(ok.status, '200');
      await promtoolCheck(ok.body);
      const untrusted = await curl(['-u', 'prom:s3cret', url]);
      assert.notEqual(untrusted.code, 0, 'curl refuses the certificate without --cacert');
      const plain = await curl([`http://127.0.0.1:${exp.port}/metrics`]);
      assert.notEqual(plain.status, '200', 'no plain HTTP on a TLS listener');
    } finally {
      assert.equal(await exp.stop(), 0);
    }
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fullSchema } from '../../src/config/schema.ts';
import { settingsOf, envName } from '../../src/config/spec.ts';
import { ROOT, parseMetrics, scrape, startExporter, valueOf } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(`${ROOT}bin/virt-exporter`, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

void describe('bin/virt-exporter', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-exporter-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('serves the embedded test host when no hypervisor is found, and the scrape passes promtool', async () => {
    const exp = await startExporter([], { VIRT_EXPORTER_RUNTIME_DIR: dir, XDG_RUNTIME_DIR: dir });
    try {
      const text = await scrape(exp.url);
      await promtoolCheck(text);
      const samples = parseMetrics(text);
      assert.equal(valueOf(samples, 'virt_up', { driver: 'test' }), 1);
      assert.equal(valueOf(samples, 'virt_exporter_build_info', { version: '0.1.0' }), 1);
      assert.ok(samples.some((s) => s.name === 'process_resident_memory_bytes'));
      assert.match(exp.log(), /"msg":"detected host","uri":"test:\/\/\/default"/);
    } finally {
      assert.equal(await exp.stop(), 0, 'SIGTERM exits 0');
    }
  });

  void it('honours collector toggles and the telemetry path; precedence is defaults < file < env < flags', async () => {
    const cfg = join(dir, 'config.yaml');
    await writeFile(cfg, 'web:\n  telemetry-path: /from-file\ncollector:\n  block: false\n  network: false\n');
    const exp = await startExporter(['--connect=test:///default', `--config=${cfg}`, '--no-collector.host', '--collector.network'], {
      VIRT_EXPORTER_WEB_TELEMETRY_PATH: '/from-env',
    });
    try {
      assert.equal((await fetch(`${exp.url}/metrics`)).status, 404);
      assert.equal((await fetch(`${exp.url}/from-file`)).status, 404);
      const text = await (await fetch(`${exp.url}/from-env`)).text();
      const names = new Set(parseMetrics(text).map((s) => s.name));
      assert.ok(!names.has('virt_domain_block_read_bytes_total'), 'block off from the file');
      assert.ok(!names.has('virt_host_cpus'), 'host off from the flag');
      assert.ok(names.has('virt_domain_network_receive_bytes_total'), 'network: the flag beats the file');
    } finally {
      await exp.stop();
    }
  });

  const refusals: Array<[string, string[], RegExp, NodeJS.ProcessEnv?]> = [
    ['a bad URI', ['--connect=vmware:///'], /unknown driver "vmware".*accepted forms/],
    ['a bad listen address', ['--web.listen-address=:99999'], /web\.listen-address.*99999|99999.*web\.listen-address/],
    ['a bad duration', ['--collect.timeout=soon'], /collect\.timeout.*soon/],
    ['a bad regex', ['--collect.domain-include=(['], /collect\.domain-include/],
    ['a bad log level', ['--log.level=chatty'], /log\.level.*chatty/],
    ['an unknown flag', ['--web.listen-adress=:1'], /unknown flag --web\.listen-adress/],
    ['a bad boolean', ['--collector.cpu=maybe'], /collector\.cpu=maybe/],
    ['a bad environment value', [], /collect\.timeout.*nope/, { VIRT_EXPORTER_COLLECT_TIMEOUT: 'nope' }],
    ['a missing host file', ['--connect=test:///no/such/host.json'], /VIRT_ERR_NO_CONNECT|cannot read host file/],
  ];
  for (const [what, args, message, env] of refusals) {
    void it(`refuses ${what} with a clear message and a non-zero exit, before binding`, () => {
      const r = run(['--web.listen-address=127.0.0.1:0', ...args], env);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /"msg":"listening"|msg=listening/);
    });
  }

  void it('refuses unknown keys and bad values in a config file, naming them', async () => {
    const unknown = join(dir, 'unknown.yaml');
    await writeFile(unknown, 'web:\n  listen-adress: ":9477"\n');
    let r = run([`--config=${unknown}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown key 'web\.listen-adress'/);
    const badJson = join(dir, 'bad.json');
    await writeFile(badJson, '{"log": {"format": "xml"}}');
    r = run([`--config=${badJson}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /log\.format.*xml/);
    r = run([`--config=${join(dir, 'missing.yaml')}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot read config file/);
  });

  void it('refuses a broken host file naming the field', async () => {
    const hostFile = join(dir, 'host.json');
    await writeFile(hostFile, JSON.stringify({ domains: [{ name: 'a', memoryMiB: -5, vcpus: 1 }] }));
    const r = run(['--web.listen-address=127.0.0.1:0', `--connect=test://${hostFile}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\$\.domains\[0\]\.memoryMiB: must be at least 1, got -5/);
  });

  void it('--help lists every setting with its default and environment name; --version prints the version', () => {
    const help = run(['--help']);
    assert.equal(help.code, 0);
    for (const [key, spec] of settingsOf(fullSchema())) {
      if (spec.hidden === true) continue;
      assert.ok(help.stdout.includes(`--${spec.format === Boolean ? '[no-]' : ''}${key}`), `--help lists ${key}`);
      assert.ok(help.stdout.includes(envName(key)), `--help names ${envName(key)}`);
    }
    const v = run(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^virt-exporter 0\.1\.0/);
  });
});

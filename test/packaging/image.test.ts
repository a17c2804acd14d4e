// The OCI image from the repository's real Dockerfile, built with Debian's
// buildah without pulling (a base from mmdebstrap imported under the FROM
// name; image-build.ts, cached under .cache/image/), then run with podman:
// it runs as uid 9477, serves /metrics on the test host, carries no build
// secret in any layer, and is what the Helm chart's default image names.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseMetrics, ROOT } from '../helpers/exporter.ts';
import { waitFor } from '../qemud/helpers.ts';
import { buildImage, IMAGE_REPOSITORY, podmanFlags, SECRET_ID, type BuiltImage } from './image-build.ts';

const execFileP = promisify(execFile);
const UID = '9477';
let img: BuiltImage | undefined;

function image(): BuiltImage {
  if (img === undefined) throw new Error('the image was not built (see the before hook)');
  return img;
}

async function podman(args: string[], timeout = 120_000): Promise<string> {
  return (await execFileP('podman', [...podmanFlags(image()), ...args], { timeout, maxBuffer: 64 * 1024 * 1024 })).stdout;
}

/**
 * podman asks runc for rlimits of its own (nofile 1048576, nproc 4194304);
 * raising a limit needs CAP_SYS_RESOURCE, which root lacks on this machine,
 * so ask for limits no higher than ours (lowering is always allowed).
 */
function ulimits(): string[] {
  const lim = readFileSync('/proc/self/limits', 'utf8');
  const capped = (name: string): number => {
    const v = new RegExp(`^${name}\\s+\\S+\\s+(\\S+)`, 'm').exec(lim)?.[1] ?? 'unlimited';
    return v === 'unlimited' ? 4096 : Math.min(Number(v), 4096);
  };
  const files = capped('Max open files');
  const procs = capped('Max processes');
  return ['--ulimit', `nofile=${files}:${files}`, '--ulimit', `nproc=${procs}:${procs}`];
}

/** The certificates of a PEM bundle that Node does not carry itself: the host's own CAs, a proxy's among them. */
function ownCertificates(pem: string): string[] {
  const body = (c: string): string => c.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const known = new Set(rootCertificates.map(body));
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).filter((c) => !known.has(body(c)));
}

/** Whether a file holds any of the needles, read in chunks that overlap by the longest needle. */
async function fileContains(file: string, needles: Buffer[]): Promise<string[]> {
  const overlap = Math.max(0, ...needles.map((n) => n.length));
  const found = new Set<string>();
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 8 * 1024 * 1024 })) {
    const buf = Buffer.concat([tail, chunk as Buffer]);
    for (const n of needles) if (buf.includes(n)) found.add(n.toString());
    tail = buf.subarray(Math.max(0, buf.length - overlap));
  }
  return [...found];
}

before(async () => {
  img = await buildImage();
  const how = img.built ? `built in ${img.buildSeconds.toFixed(0)} s` : `loaded from ${img.archive}`;
  process.stderr.write(`image ${img.ref}: ${how}\n`);
}, { timeout: 1_800_000 });

after(async () => {
  await img?.cleanup();
});

void describe('the OCI image from the Dockerfile', { timeout: 1_800_000 }, () => {
  void it('is built without pulling: the runtime stage runs as uid 9477 with the exporter as entrypoint, and carries no compiler', async () => {
    const cfg = JSON.parse(await podman(['image', 'inspect', image().ref])) as { Config: { User?: string; Entrypoint?: string[]; ExposedPorts?: Record<string, unknown>; Env?: string[] } }[];
    const c = cfg[0]?.Config;
    assert.ok(c !== undefined, 'podman image inspect gave no config');
    assert.equal(c.User, `${UID}:${UID}`);
    assert.deepEqual(c.Entrypoint, ['/usr/lib/virt-exporter/bin/virt-exporter']);
    assert.ok(Object.keys(c.ExposedPorts ?? {}).includes('9477/tcp'), JSON.stringify(c.ExposedPorts));
    const mnt = (await podman(['image', 'mount', image().ref])).trim();
    try {
      const lib = join(mnt, 'usr/lib/virt-exporter');
      for (const f of ['bin/virt-exporter', 'build/src/cli/exporter.js', 'node_modules/.bin/node', 'native/build/virt-proxy', 'build-info.json']) assert.ok(existsSync(join(lib, f)), `${f} is missing from the image`);
      // Slim: what only the build stage needs stays there.
      for (const f of ['usr/bin/gcc', 'usr/bin/cc', 'usr/include/xenctrl.h', 'usr/bin/npm', 'usr/lib/virt-exporter/node_modules/typescript', 'usr/lib/virt-exporter/src']) assert.equal(existsSync(join(mnt, f)), false, `${f} is in the runtime image`);
      const passwd = readFileSync(join(mnt, 'etc/passwd'), 'utf8');
      assert.match(passwd, new RegExp(`^virt-exporter:x:${UID}:${UID}:`, 'm'));
      const info = JSON.parse(readFileSync(join(lib, 'build-info.json'), 'utf8')) as { revision: string; branch: string };
      assert.equal(info.revision, image().revision);
      // Owned by root, not writable by the user it runs as.
      assert.equal(statSync(join(lib, 'build')).uid, 0);
      assert.equal(statSync(join(lib, 'build')).mode & 0o022, 0);
    } finally {
      await podman(['image', 'unmount', image().ref]);
    }
  });

  void it('carries no build secret, npm configuration or CA file in any layer or in its configuration', async () => {
    const { secret, archive, ref } = image();
    assert.ok(secret !== undefined, 'the build had no CA bundle to pass as a secret (none at NODE_EXTRA_CA_CERTS or /etc/ssl/certs/ca-certificates.crt)');
    const own = ownCertificates(readFileSync(secret, 'utf8'));
    assert.ok(own.length > 0, `${secret} holds no certificate beyond those Node carries; the search below would prove nothing`);
    // A 64-character line from the middle of each host-only certificate; the archive's layers are uncompressed tars.
    const needles = own.map((c) => {
      const lines = c.split('\n').filter((l) => /^[A-Za-z0-9+/]{64}$/.test(l));
      return Buffer.from(lines[Math.floor(lines.length / 2)] ?? '');
    }).filter((b) => b.length > 0);
    assert.deepEqual((await fileContains(secret, needles)).sort(), needles.map(String).sort(), 'the search does not find the secret\'s certificates in the secret itself');
    assert.deepEqual(await fileContains(archive, needles), [], `a certificate of the build secret ${secret} is in ${archive}`);
    const cfg = await podman(['image', 'inspect', ref]);
    assert.doesNotMatch(cfg, /NODE_EXTRA_CA_CERTS=|npm_config_cafile/i, 'the secret leaked into the image configuration');
    const listing = spawnSync('tar', ['-tf', archive], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).stdout;
    const layers = listing.split('\n').filter((l) => l.endsWith('.tar'));
    assert.ok(layers.length >= 2, listing);
    const files: string[] = [];
    for (const l of layers) files.push(...spawnSync('sh', ['-c', 'tar -xOf "$1" "$2" | tar -t', 'sh', archive, l], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }).stdout.split('\n'));
    assert.ok(files.some((f) => f.endsWith('usr/lib/virt-exporter/build-info.json')), 'the layer listing did not work');
    for (const bad of [/(^|\/)\.npmrc$/, new RegExp(`(^|/)${SECRET_ID}$`), /^(\.\/)?run\/secrets\/./, /(^|\/)usr\/local\/share\/ca-certificates\/./]) {
      assert.deepEqual(files.filter((f) => bad.test(f)), [], `a layer holds ${String(bad)}`);
    }
  });

  void it('runs under podman as uid 9477, not root, and serves /metrics of the test host with the build\'s revision', async () => {
    const name = `virt-exporter-test-${process.pid}`;
    const log = join(image().storage[1] ?? '', '..', 'tmp', `${name}.log`);
    await podman(['run', '--detach', '--name', name, '--network', 'host', '--log-driver', 'k8s-file', '--log-opt', `path=${log}`, ...ulimits(), image().ref, '--connect=test:///default', '--web.listen-address=127.0.0.1:0', '--log.format=json']);
    const read = (): string => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    try {
      await waitFor(async () => /"msg":"listening"/.test(read()) || (await podman(['container', 'inspect', '--format', '{{.State.Running}}', name])).trim() !== 'true', 60_000, 'the exporter in the container to listen');
      const port = /"msg":"listening","address":"127\.0\.0\.1:(\d+)"/.exec(read())?.[1];
      assert.ok(port !== undefined, read());
      const pid = (await podman(['container', 'inspect', '--format', '{{.State.Pid}}', name])).trim();
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^Name:\s+node$/m);
      assert.match(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'), status);
      assert.match(status, new RegExp(`^Gid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'), status);
      assert.doesNotMatch(status, /^Uid:\s+0\s/m);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      const samples = parseMetrics(await res.text());
      const build = samples.find((s) => s.name === 'virt_exporter_build_info');
      assert.equal(build?.labels['revision'], image().revision);
      assert.match(build?.labels['nodejs'] ?? '', /^22\./);
      assert.ok(samples.some((s) => s.name.startsWith('virt_domain_') && s.labels['domain'] === 'web-1'), 'no metric of the test host\'s domain web-1');
      await podman(['stop', '--time', '20', name]);
      assert.equal((await podman(['container', 'inspect', '--format', '{{.State.ExitCode}}', name])).trim(), '0', read());
      assert.match(read(), /"msg":"stopped"/);
    } finally {
      await podman(['rm', '--force', name]).catch(() => undefined);
    }
  });

  void it('is what the Helm chart\'s default image names', () => {
    const chart = parseYaml(readFileSync(join(ROOT, 'helm/virt-exporter/Chart.yaml'), 'utf8')) as { appVersion: string };
    const values = parseYaml(readFileSync(join(ROOT, 'helm/virt-exporter/values.yaml'), 'utf8')) as { image: { registry: string; repository: string; tag: string; digest: string } };
    assert.equal(values.image.tag, '', 'the chart\'s default tag is its appVersion');
    assert.equal(values.image.digest, '');
    assert.equal(`${values.image.registry}/${values.image.repository}:${chart.appVersion}`, image().ref);
    assert.equal(`${values.image.registry}/${values.image.repository}`, IMAGE_REPOSITORY);
    assert.ok(readdirSync(join(ROOT, 'helm/virt-exporter')).includes('values.yaml'));
  });
});

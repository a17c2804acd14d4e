/**
 * Builds test/helm/render/main.go (a Helm 3 template stand-in) with Debian's Go
 * in GOPATH mode into .cache/helm-render/<hash of source and Go version>/, and
 * renders charts with it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(ROOT, 'helm/virt-exporter');
const SOURCE = join(ROOT, 'test/helm/render/main.go');
/** Debian's Go libraries, as golang-github-masterminds-sprig-dev, golang-github-ghodss-yaml-dev and golang-github-xeipuuv-gojsonschema-dev install them. */
const GOPATH = '/usr/share/gocode';

let built: string | undefined;

export function renderer(): string {
  if (built !== undefined) return built;
  const version = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (version.error !== undefined || version.status !== 0) {
    throw new Error(`go is required to build the chart renderer (Debian package golang-go, see .ci/apt-packages.txt): ${String(version.error ?? version.stderr)}`);
  }
  for (const lib of ['github.com/Masterminds/sprig', 'github.com/Masterminds/semver', 'github.com/ghodss/yaml', 'github.com/xeipuuv/gojsonschema']) {
    if (!existsSync(join(GOPATH, 'src', lib))) throw new Error(`${lib} is missing from ${GOPATH}; install the Debian packages listed in .ci/apt-packages.txt`);
  }
  const hash = createHash('sha256').update(readFileSync(SOURCE)).update(version.stdout).digest('hex').slice(0, 16);
  const dir = join(ROOT, '.cache/helm-render', hash);
  const bin = join(dir, 'helm-render');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    const r = spawnSync('go', ['build', '-o', tmp, SOURCE], {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', GOCACHE: join(ROOT, '.cache/helm-render/go-build') },
    });
    if (r.status !== 0) throw new Error(`go build of the chart renderer failed:\n${r.stdout}${r.stderr}`);
    renameSync(tmp, bin);
  }
  built = bin;
  return bin;
}

export interface Rendered {
  manifests: Record<string, string>;
  notes: string;
}

export type K8sObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };

export class RenderError extends Error {}

/** Renders the chart with the values files (paths relative to the chart) and extra values as YAML text. */
export function render(valuesFiles: string[], opts: { chart?: string; extra?: string; name?: string; namespace?: string; apiVersions?: string[]; kubeVersion?: string; tmpFile?: string } = {}): Rendered {
  const args = ['-chart', opts.chart ?? CHART, '-name', opts.name ?? 'virt', '-namespace', opts.namespace ?? 'virt-system'];
  for (const f of valuesFiles) args.push('-f', join(opts.chart ?? CHART, f));
  if (opts.extra !== undefined) {
    if (opts.tmpFile === undefined) throw new Error('extra values need a tmpFile');
    args.push('-f', opts.tmpFile);
  }
  if (opts.apiVersions !== undefined) args.push('-api-versions', opts.apiVersions.join(','));
  if (opts.kubeVersion !== undefined) args.push('-kube-version', opts.kubeVersion);
  const r = spawnSync(renderer(), args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new RenderError(r.stderr.trim());
  return JSON.parse(r.stdout) as Rendered;
}

/** The objects of a rendering, parsed strictly (duplicate keys and syntax errors fail). */
export function objectsOf(r: Rendered): Array<{ source: string; object: K8sObject }> {
  const out: Array<{ source: string; object: K8sObject }> = [];
  for (const [source, text] of Object.entries(r.manifests).sort()) {
    for (const doc of YAML.parseAllDocuments(text, { uniqueKeys: true, strict: true })) {
      if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}\n${text}`);
      const object = doc.toJS() as K8sObject | null;
      if (object === null) continue;
      out.push({ source, object });
    }
  }
  return out;
}

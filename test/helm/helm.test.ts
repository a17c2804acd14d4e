/**
 * Static checks of the Helm chart against the exporter itself: values
 * referenced exist, flags passed are real flags, defaults match the code's
 * defaults, and template blocks are balanced. The rendered chart is checked
 * by render.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { COLLECTORS } from '../../src/collectors/catalogue.ts';
import { fullSchema } from '../../src/config/schema.ts';
import { envName, settingsOf } from '../../src/config/spec.ts';
import { XENSTORE_DEFAULT_SOCKET } from '../../src/drivers/xen/xenstore.ts';
import { resolvePaths } from '../../src/qemud-shared/paths.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = join(ROOT, 'helm/virt-exporter');
const TEMPLATES = join(CHART, 'templates');

type Json = Record<string, unknown>;
const load = (file: string): Json => YAML.parse(readFileSync(join(CHART, file), 'utf8')) as Json;
const templateFiles = (): string[] => readdirSync(TEMPLATES).filter((f) => /\.(ya?ml|tpl|txt)$/.test(f)).sort();
const template = (f: string): string => readFileSync(join(TEMPLATES, f), 'utf8');
const SETTINGS = new Map(settingsOf(fullSchema()));

function lookup(obj: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let cur: unknown = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null || !(key in cur)) return { found: false, value: undefined };
    cur = (cur as Json)[key];
  }
  return { found: true, value: cur };
}

/** For each line of a template, the conditions of the blocks it sits in. */
function blockStack(text: string): Array<{ line: string; open: string[] }> {
  const out: Array<{ line: string; open: string[] }> = [];
  const stack: string[] = [];
  for (const line of text.split('\n')) {
    out.push({ line, open: [...stack] });
    for (const m of line.matchAll(/\{\{-?\s*(if|range|with|define|block|end)\b([^}]*)\}\}/g)) {
      if (m[1] === 'end') {
        if (stack.pop() === undefined) throw new Error(`unmatched {{ end }} at: ${line}`);
      } else {
        stack.push(`${m[1] as string}${m[2] as string}`.trim());
      }
    }
  }
  if (stack.length > 0) throw new Error(`unclosed blocks: ${stack.join(' | ')}`);
  return out;
}

/** The flags the DaemonSet passes, with the template's collector loop expanded over values.collectors. */
function daemonSetFlags(values: Json): Array<{ flag: string; hasValue: boolean; line: string }> {
  const out: Array<{ flag: string; hasValue: boolean; line: string }> = [];
  for (const raw of template('daemonset.yaml').split('\n')) {
    // Either a plain "- --flag[=value]" or a quoted '- {{ printf "--flag=%s" VALUE | quote }}'.
    const m = /^\s*- --(.*)$/.exec(raw) ?? /^\s*- \{\{ printf "--([^"%]+%s)" .* \| quote \}\}$/.exec(raw);
    if (m === null) {
      assert.ok(!/^\s*- .*--[a-z]/.test(raw), `unrecognised argument line: ${raw}`);
      continue;
    }
    // "{{ if not X }}no-{{ end }}" is an optional negation of a boolean flag.
    let text = (m[1] as string).replace(/^\{\{ if not [^}]+\}\}no-\{\{ end \}\}/, '');
    const negatedByTemplate = text !== m[1];
    if (text.startsWith('no-')) text = text.slice(3);
    const eq = text.indexOf('=');
    const name = eq === -1 ? text : text.slice(0, eq);
    const names = name.includes('{{ $name }}') ? Object.keys(values.collectors as Json).map((k) => name.replace('{{ $name }}', k)) : [name];
    for (const flag of names) {
      assert.ok(!flag.includes('{{'), `unexpanded template in flag name: ${raw}`);
      out.push({ flag, hasValue: eq !== -1, line: raw.trim() + (negatedByTemplate ? ' (negatable)' : '') });
    }
  }
  return out;
}

void describe('Helm chart helm/virt-exporter (static)', () => {
  void it('Chart.yaml and values.yaml parse, and the chart version follows the package', () => {
    const chart = load('Chart.yaml');
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'virt-exporter');
    assert.match(String(chart.version), /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(chart.appVersion, pkg.version, 'appVersion is the exporter version');
    const values = load('values.yaml');
    assert.equal(typeof values, 'object');
    assert.deepEqual(Object.keys(values.collectors as Json), [...COLLECTORS], 'one toggle per collector, in catalogue order');
  });

  void it('references only values that exist in values.yaml', () => {
    const values = load('values.yaml');
    const missing: string[] = [];
    let refs = 0;
    for (const f of templateFiles()) {
      for (const m of template(f).matchAll(/\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        refs++;
        const path = (m[1] as string).slice(1).split('.');
        if (!lookup(values, path).found) missing.push(`${f}: .Values.${path.join('.')}`);
      }
    }
    assert.ok(refs > 50, `found ${refs} references`);
    assert.deepEqual(missing, []);
  });

  void it('passes only real exporter flags, with values where the flag takes one', () => {
    const values = load('values.yaml');
    const flags = daemonSetFlags(values);
    assert.ok(flags.length >= 15, `found ${flags.length} flags`);
    for (const { flag, hasValue, line } of flags) {
      if (flag === 'config') {
        assert.ok(hasValue, line);
        continue;
      }
      const spec = SETTINGS.get(flag);
      assert.ok(spec !== undefined, `--${flag} is not an exporter flag (${line})`);
      assert.equal(spec.format === Boolean, !hasValue, `--${flag}: ${spec.format === Boolean ? 'boolean flags take no value' : 'needs a value'} (${line})`);
    }
    for (const c of COLLECTORS) assert.ok(flags.some((f) => f.flag === `collector.${c}`), `collector.${c} is passed`);
    for (const a of (values.extraArgs as string[]) ?? []) assert.ok(SETTINGS.has(a.replace(/^--(no-)?/, '').replace(/=.*$/, '')), a);
    // Environment variables the chart sets for the exporter are real settings too.
    for (const m of template('daemonset.yaml').matchAll(/name: (VIRT_EXPORTER_[A-Z0-9_]+)/g)) {
      assert.ok([...SETTINGS.keys()].some((k) => envName(k) === m[1]), `${m[1] as string} is the environment variable of a setting`);
    }
  });

  void it('uses the exporter defaults: port, health paths, host paths per driver', () => {
    const values = load('values.yaml');
    const port = Number(/:(\d+)$/.exec(String(SETTINGS.get('web.listen-address')?.default))?.[1]);
    assert.equal(values.containerPort, port);
    assert.equal((values.service as Json).port, port);
    assert.equal((values.web as Json).telemetryPath, SETTINGS.get('web.telemetry-path')?.default);
    const server = readFileSync(join(ROOT, 'src/http/server.ts'), 'utf8');
    const ds = template('daemonset.yaml');
    for (const path of ['/-/healthy', '/-/ready']) {
      assert.ok(server.includes(`'${path}'`), `the exporter serves ${path}`);
      assert.ok(ds.includes(`path: ${path}`), `a probe uses ${path}`);
    }
    assert.equal((values.qemu as Json).runtimeDir, resolvePaths('system').runtimeDir, 'qemu:///system socket directory');
    const xen = values.xen as Json;
    assert.equal(xen.proxySocket, SETTINGS.get('xen.proxy-socket')?.default);
    assert.equal(xen.xenstoredDir, dirname(XENSTORE_DEFAULT_SOCKET));
    assert.equal(xen.procXen, '/proc/xen');
  });

  void it('is non-root with a read-only root filesystem by default; privileged only on the Xen hypervisor path', () => {
    const values = load('values.yaml');
    const pod = values.podSecurityContext as Json;
    const ctr = values.securityContext as Json;
    assert.equal(pod.runAsNonRoot, true);
    assert.notEqual(pod.runAsUser, 0);
    assert.equal(ctr.readOnlyRootFilesystem, true);
    assert.equal(ctr.allowPrivilegeEscalation, false);
    assert.deepEqual((ctr.capabilities as Json).drop, ['ALL']);
    assert.equal((values.admin as Json).enabled, false, 'admin endpoint off by default');
    assert.equal(values.driver, 'qemu');
    const lines = blockStack(template('daemonset.yaml'));
    const privileged = lines.filter((l) => /privileged: true|runAsUser: 0|runAsNonRoot: false|--xen\.privileged=root/.test(l.line));
    assert.ok(privileged.length >= 4);
    for (const l of privileged) assert.ok(l.open.includes('if $xenHypervisor'), `"${l.line.trim()}" only on the Xen hypervisor path (inside: ${l.open.join(' > ')})`);
    const helpers = template('_helpers.tpl');
    assert.match(helpers, /define "virt-exporter\.xenHypervisor"[\s\S]*?eq \.Values\.driver "xen"\) \(eq \.Values\.xen\.mode "hypervisor"\)/);
    // Host mounts are read-only except the qemu/libvirt socket dirs when the admin endpoint needs the read-write socket.
    for (const [i, l] of lines.entries()) {
      if (!/mountPath: \{\{ \.Values\.(qemu|xen|libvirt)\./.test(l.line) && !/mountPath: \/host/.test(l.line) && !/mountPath: \{\{ dir/.test(l.line)) continue;
      const next = lines[i + 1]?.line ?? '';
      if (l.line.includes('xen.devXen')) continue;
      assert.match(next, /readOnly: (true|\{\{ not \.Values\.admin\.enabled \}\})/, `${l.line.trim()} is read-only`);
    }
  });

  void it('has balanced template blocks, defined helpers and existing included templates', () => {
    const defined = new Set([...template('_helpers.tpl').matchAll(/define "([^"]+)"/g)].map((m) => m[1]));
    for (const f of templateFiles()) {
      const text = template(f);
      assert.equal((text.match(/\{\{/g) ?? []).length, (text.match(/\}\}/g) ?? []).length, `${f}: {{ and }} balance`);
      assert.doesNotThrow(() => blockStack(text), `${f}: blocks balance`);
      for (const m of text.matchAll(/include "([^"]+)"/g)) assert.ok(defined.has(m[1]), `${f}: include "${m[1] as string}" is defined`);
      for (const m of text.matchAll(/\$\.Template\.BasePath "\/([^"]+)"/g)) assert.ok(templateFiles().includes(m[1] as string), `${f}: ${m[1] as string} exists`);
    }
    const kinds = templateFiles()
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => /^kind: (\w+)$/m.exec(template(f))?.[1]);
    assert.deepEqual(kinds.sort(), ['DaemonSet', 'NetworkPolicy', 'PodMonitor', 'PrometheusRule', 'Secret', 'Secret', 'Service', 'Service', 'ServiceAccount', 'ServiceMonitor']);
  });
});

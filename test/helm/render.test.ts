/**
 * The chart rendered by a real template engine (test/helm/render/main.go:
 * Go text/template + sprig + Helm's additions, built from Debian's Go), for
 * every ci/*-values.yaml, then checked:
 *
 * - every object against Kubernetes' and the Prometheus Operator's schemas:
 *   kubernetes-models' validators at run time, and its TypeScript types with
 *   the compiler's excess-property check so unknown fields are rejected;
 * - policies: non-root exporter, read-only root filesystem, all capabilities
 *   dropped, privileged only on the Xen hypervisor path, no helm.sh/chart in
 *   selectors, admin off by default, read-only host mounts;
 * - the fixed bugs and the added values each reach the objects.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { fullSchema } from '../../src/config/schema.ts';
import { settingsOf } from '../../src/config/spec.ts';
import { parseResourceAttributes } from '../../src/telemetry/settings.ts';
import { RULES_FILE } from '../../scripts/gen-dashboards.ts';
import { JOB_SELECTOR } from '../../scripts/rules.ts';
import { CHART, ROOT, RenderError, objectsOf, render, renderer, type K8sObject } from './render.ts';

type Json = Record<string, unknown>;
const SETTINGS = new Map(settingsOf(fullSchema()));

/** kind -> model class (run-time validation) and TypeScript type (unknown-field check). */
const MODELS: Record<string, { validate: (o: K8sObject) => void; type: string; module: string }> = {
  'apps/v1/DaemonSet': { validate: (o) => new DaemonSet(o).validate(), type: 'IDaemonSet', module: 'kubernetes-models/apps/v1/DaemonSet' },
  'v1/Service': { validate: (o) => new Service(o).validate(), type: 'IService', module: 'kubernetes-models/v1/Service' },
  'v1/Secret': { validate: (o) => new Secret(o).validate(), type: 'ISecret', module: 'kubernetes-models/v1/Secret' },
  'v1/ServiceAccount': { validate: (o) => new ServiceAccount(o).validate(), type: 'IServiceAccount', module: 'kubernetes-models/v1/ServiceAccount' },
  'networking.k8s.io/v1/NetworkPolicy': { validate: (o) => new NetworkPolicy(o).validate(), type: 'INetworkPolicy', module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy' },
  'monitoring.coreos.com/v1/ServiceMonitor': { validate: (o) => new ServiceMonitor(o as never).validate(), type: 'IServiceMonitor', module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor' },
  'monitoring.coreos.com/v1/PodMonitor': { validate: (o) => new PodMonitor(o as never).validate(), type: 'IPodMonitor', module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor' },
  'monitoring.coreos.com/v1/PrometheusRule': { validate: (o) => new PrometheusRule(o as never).validate(), type: 'IPrometheusRule', module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule' },
};
const modelOf = (o: K8sObject): (typeof MODELS)[string] => {
  const m = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(m !== undefined, `no schema for ${o.apiVersion} ${o.kind}`);
  return m;
};

const CI_FILES = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')).sort();
const MODES = ['(defaults)', ...CI_FILES];

interface Mode {
  name: string;
  values: Json;
  objects: Array<{ source: string; object: K8sObject }>;
}

const find = (m: Mode, kind: string): K8sObject[] => m.objects.filter((o) => o.object.kind === kind).map((o) => o.object);
const one = (m: Mode, kind: string): K8sObject => {
  const all = find(m, kind);
  assert.equal(all.length, 1, `${m.name}: one ${kind}`);
  return all[0] as K8sObject;
};
const podSpec = (m: Mode): Json => ((one(m, 'DaemonSet').spec as Json).template as Json).spec as Json;
const exporter = (m: Mode): Json => (podSpec(m).containers as Json[]).find((c) => c.name === 'virt-exporter') as Json;
const args = (m: Mode): string[] => exporter(m).args as string[];
const arg = (m: Mode, flag: string): string | undefined => args(m).find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);
const mountOf = (m: Mode, volume: string): Json | undefined => (exporter(m).volumeMounts as Json[]).find((v) => v.name === volume);
const volumeOf = (m: Mode, volume: string): Json | undefined => (podSpec(m).volumes as Json[]).find((v) => v.name === volume);

function deepValues(...files: string[]): Json {
  let v = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Json;
  const merge = (a: Json, b: Json): Json => {
    for (const [k, x] of Object.entries(b)) {
      const y = a[k];
      a[k] = typeof x === 'object' && x !== null && !Array.isArray(x) && typeof y === 'object' && y !== null && !Array.isArray(y) ? merge(y as Json, x as Json) : x;
    }
    return a;
  };
  for (const f of files) v = merge(v, YAML.parse(readFileSync(join(CHART, f), 'utf8')) as Json);
  return v;
}

void describe('Helm chart rendered by helm-render (Go text/template + sprig, built from Debian packages)', { timeout: 300_000 }, () => {
  const modes = new Map<string, Mode>();
  let tmp = '';
  const m = (name: string): Mode => {
    const x = modes.get(name);
    assert.ok(x !== undefined, name);
    return x;
  };
  const renderExtra = (extra: string, files: string[] = []): ReturnType<typeof render> => {
    const f = join(tmp, `extra-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, extra);
    return render(files, { extra, tmpFile: f });
  };

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'virt-helm-'));
    renderer();
    for (const name of MODES) {
      const files = name === '(defaults)' ? [] : [`ci/${name}`];
      modes.set(name, { name, values: deepValues(...files), objects: objectsOf(render(files)) });
    }
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  void it('has a values file for every mode, and each renders', () => {
    assert.deepEqual(CI_FILES, ['everything-values.yaml', 'libvirt-values.yaml', 'libvirt-xen-values.yaml', 'qemu-values.yaml', 'test-values.yaml', 'xen-hypervisor-values.yaml', 'xen-proxy-values.yaml']);
    for (const name of MODES) assert.ok(m(name).objects.length >= 3, `${name} renders objects`);
    assert.ok(existsSync(join(CHART, '.helmignore')), '.helmignore');
  });

  void it("every object passes kubernetes-models' validation", () => {
    for (const name of MODES) {
      for (const { source, object } of m(name).objects) {
        assert.doesNotThrow(() => modelOf(object).validate(object), `${name} ${source} ${object.kind}`);
      }
    }
    // The validators do reject a bad object.
    assert.throws(() => new DaemonSet({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: 'no' } } } } as never).validate());
  });

  void it('every object has only known fields (Kubernetes TypeScript types, excess-property check by tsc)', () => {
    const dir = join(ROOT, '.cache/helm-check');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const imports = Object.values(MODELS).map((x) => `import type { ${x.type} } from '${x.module}';`);
    const body: string[] = [];
    let n = 0;
    for (const name of MODES) {
      for (const { source, object } of m(name).objects) body.push(`// ${name} ${source}\nexport const o${n++}: ${modelOf(object).type} = ${JSON.stringify(object)};`);
    }
    writeFileSync(join(dir, 'rendered.ts'), [...imports, ...body, ''].join('\n'));
    // A control: an unknown field in a pod spec must be reported.
    writeFileSync(join(dir, 'control.ts'), `${imports.join('\n')}\nexport const bad: IDaemonSet = ${JSON.stringify({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'c', imagePullPolicyy: 'Always' }] } } } })};\n`);
    const r = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', join(dir, 'rendered.ts'), join(dir, 'control.ts')], {
      encoding: 'utf8',
      timeout: 180_000,
      cwd: ROOT,
    });
    const out = r.stdout + r.stderr;
    const errors = out.split('\n').filter((l) => /error TS/.test(l));
    assert.ok(errors.some((l) => l.includes('control.ts') && l.includes('imagePullPolicyy')), `the control's unknown field is reported:\n${out}`);
    assert.deepEqual(errors.filter((l) => l.includes('rendered.ts')), [], `rendered objects have unknown or mistyped fields:\n${out}`);
    assert.ok(n > 30, `checked ${n} objects`);
  });

  void it('policy: non-root, read-only root filesystem, capabilities dropped, privileged only on the Xen hypervisor path', () => {
    for (const name of MODES) {
      const mode = m(name);
      const pod = podSpec(mode);
      const xenHypervisor = name === 'xen-hypervisor-values.yaml';
      for (const c of pod.containers as Json[]) {
        const sc = (c.securityContext ?? {}) as Json;
        assert.equal(sc.readOnlyRootFilesystem, true, `${name} ${String(c.name)} read-only root filesystem`);
        if (xenHypervisor && c.name === 'virt-exporter') {
          assert.equal(sc.privileged, true);
          continue;
        }
        assert.notEqual(sc.privileged, true, `${name} ${String(c.name)} is not privileged`);
        assert.equal(sc.allowPrivilegeEscalation, false, `${name} ${String(c.name)} no privilege escalation`);
        assert.deepEqual((sc.capabilities as Json | undefined)?.drop, ['ALL'], `${name} ${String(c.name)} drops all capabilities`);
        const podSc = pod.securityContext as Json;
        const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
        const runAsUser = sc.runAsUser ?? podSc.runAsUser;
        assert.equal(runAsNonRoot, true, `${name} ${String(c.name)} runs as non-root`);
        assert.ok(typeof runAsUser === 'number' && runAsUser !== 0, `${name} ${String(c.name)} has a non-zero uid`);
      }
      if (!xenHypervisor) assert.equal((pod.securityContext as Json).runAsNonRoot, true, `${name}: pod non-root`);
      else assert.deepEqual(((pod.securityContext as Json).runAsUser), 0, 'the hypervisor path runs as root');
      // Host paths are mounted read-only, but the socket directories when admin needs the read-write socket, /dev/xen and the audit log.
      const hostVolumes = new Set((pod.volumes as Json[]).filter((v) => v.hostPath !== undefined).map((v) => String(v.name)));
      for (const mount of exporter(mode).volumeMounts as Json[]) {
        if (!hostVolumes.has(String(mount.name))) continue;
        const writable = ['dev-xen', 'admin-audit'].includes(String(mount.name)) || (['qemu-runtime', 'libvirt-run'].includes(String(mount.name)) && (mode.values.admin as Json).enabled === true);
        assert.equal(mount.readOnly ?? false, !writable, `${name}: host mount ${String(mount.name)} readOnly=${String(!writable)}`);
      }
    }
  });

  void it('policy: no helm.sh/chart (or version) in selectors, and selectors match the pods', () => {
    for (const name of MODES) {
      const mode = m(name);
      const podLabels = ((((one(mode, 'DaemonSet').spec as Json).template as Json).metadata as Json).labels ?? {}) as Record<string, string>;
      const selectors: Array<[string, Record<string, string>]> = [['DaemonSet', ((one(mode, 'DaemonSet').spec as Json).selector as Json).matchLabels as Record<string, string>]];
      for (const s of find(mode, 'Service')) selectors.push([`Service ${s.metadata.name}`, (s.spec as Json).selector as Record<string, string>]);
      for (const k of ['ServiceMonitor', 'PodMonitor']) for (const s of find(mode, k)) selectors.push([k, ((s.spec as Json).selector as Json).matchLabels as Record<string, string>]);
      for (const s of find(mode, 'NetworkPolicy')) selectors.push(['NetworkPolicy', ((s.spec as Json).podSelector as Json).matchLabels as Record<string, string>]);
      for (const [what, sel] of selectors) {
        assert.ok(Object.keys(sel).length >= 2, `${name} ${what} selects`);
        for (const k of Object.keys(sel)) assert.ok(!['helm.sh/chart', 'app.kubernetes.io/version'].includes(k), `${name} ${what}: ${k} in a selector`);
        for (const [k, v] of Object.entries(sel)) assert.equal(podLabels[k], v, `${name} ${what} selects the pods (${k})`);
      }
    }
  });

  void it('NOTES warn when the admin endpoint cannot reach a read-write socket', () => {
    assert.match(render(['ci/libvirt-xen-values.yaml']).notes, /WARNING: the admin endpoint writes through libvirt's read-write socket \(\/run\/libvirt\/libvirt-sock\)/);
    assert.match(render(['ci/everything-values.yaml']).notes, /WARNING: the admin endpoint needs virt-qemud's read-write socket/);
    assert.doesNotMatch(render(['ci/libvirt-values.yaml']).notes, /WARNING/);
    assert.match(render([]).notes, /Driver: qemu \(qemu:\/\/\/system\)/);
  });

  void it('policy: admin off by default (no port, flag, Service or Secret)', () => {
    const d = m('(defaults)');
    assert.ok(!args(d).some((a) => a.startsWith('--admin.')), 'no admin flags');
    assert.ok(!(exporter(d).ports as Json[]).some((p) => p.name === 'admin'));
    assert.equal(find(d, 'Secret').length, 0);
    assert.deepEqual(find(d, 'Service').map((s) => s.metadata.name), ['virt-virt-exporter']);
    const e = m('everything-values.yaml');
    assert.equal(arg(e, 'admin.listen-address'), ':9478');
    assert.ok(find(e, 'Service').some((s) => s.metadata.name.endsWith('-admin')));
  });

  void it('passes only real exporter flags, and the connection each mode asks for', () => {
    for (const name of MODES) {
      for (const a of args(m(name))) {
        const mm = /^--(no-)?([a-z0-9.-]+)(=(.*))?$/.exec(a);
        assert.ok(mm !== null, `${name}: ${a}`);
        const key = mm[2] as string;
        if (key === 'config') continue;
        const spec = SETTINGS.get(key);
        assert.ok(spec !== undefined, `${name}: --${key} is not an exporter flag`);
        assert.equal(spec.format === Boolean, mm[3] === undefined, `${name}: --${key} ${spec.format === Boolean ? 'takes no value' : 'needs a value'}`);
      }
    }
    const connect = (n: string): string | undefined => arg(m(n), 'connect');
    assert.equal(connect('(defaults)'), 'qemu:///system');
    assert.equal(connect('test-values.yaml'), 'test:///default');
    assert.equal(connect('xen-proxy-values.yaml'), 'xen:///');
    assert.equal(connect('libvirt-values.yaml'), 'libvirt+qemu:///system?socket=/run/libvirt/virtqemud-sock-ro');
    assert.equal(connect('libvirt-xen-values.yaml'), 'libvirt+xen:///system');
    // libvirt: the socket directory, read-only unless the admin endpoint writes through libvirt-sock.
    for (const [n, ro] of [['libvirt-values.yaml', true], ['libvirt-xen-values.yaml', false]] as const) {
      assert.deepEqual(mountOf(m(n), 'libvirt-run'), { name: 'libvirt-run', mountPath: '/run/libvirt', readOnly: ro }, n);
      assert.deepEqual(volumeOf(m(n), 'libvirt-run'), { name: 'libvirt-run', hostPath: { path: '/run/libvirt', type: 'Directory' } });
    }
    assert.equal(volumeOf(m('(defaults)'), 'libvirt-run'), undefined);
  });

  void it('fixed: moving xen.xenstoredDir moves the mount and the socket the exporter uses', () => {
    for (const [n, dir] of [['xen-hypervisor-values.yaml', '/var/run/xenstored'], ['xen-proxy-values.yaml', '/run/xenstored']] as const) {
      assert.equal(arg(m(n), 'xen.xenstore-socket'), `${dir}/socket`, n);
      assert.equal(mountOf(m(n), 'xenstored')?.mountPath, dir);
      assert.equal((volumeOf(m(n), 'xenstored')?.hostPath as Json).path, dir);
    }
  });

  void it('fixed: resource attributes reach the exporter as written, commas and percent signs included', () => {
    const e = m('everything-values.yaml');
    const value = arg(e, 'telemetry.resource-attributes');
    assert.ok(value !== undefined);
    const parsed = parseResourceAttributes(value);
    assert.equal(parsed['deployment.environment'], 'prod,eu');
    assert.equal(parsed['service.namespace'], '100%virt');
    assert.equal(parsed['k8s.node.name'], '$(NODE_NAME)');
    const r = renderExtra('telemetry:\n  otlpEndpoint: http://c:4318\n  resourceAttributes:\n    a: "x%2C=y, z"\n    num: 3\n');
    const flag = ((objectsOf(r).find((o) => o.object.kind === 'DaemonSet')?.object.spec as Json).template as Json).spec as Json;
    const v = ((flag.containers as Json[])[0]?.args as string[]).find((x) => x.startsWith('--telemetry.resource-attributes='))?.slice(32) ?? '';
    assert.deepEqual({ a: parseResourceAttributes(v).a, num: parseResourceAttributes(v).num }, { a: 'x%2C=y, z', num: '3' });
  });

  void it('fixed: attachMetadata.node is a value, off by default; internalTrafficPolicy documented as it is', () => {
    const q = one(m('qemu-values.yaml'), 'ServiceMonitor');
    assert.equal((q.spec as Json).attachMetadata, undefined, 'off by default');
    assert.deepEqual((one(m('everything-values.yaml'), 'ServiceMonitor').spec as Json).attachMetadata, { node: true });
    const metrics = (n: string): Json => find(m(n), 'Service').find((s) => !s.metadata.name.endsWith('-admin'))?.spec as Json;
    assert.equal(metrics('(defaults)').internalTrafficPolicy, 'Cluster');
    assert.equal(metrics('everything-values.yaml').internalTrafficPolicy, 'Local');
    const doc = YAML.parseDocument(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    const pair = (doc.get('service') as { items: Array<{ key: { value: string; commentBefore?: string } }> }).items.find((p) => p.key.value === 'internalTrafficPolicy');
    assert.match(pair?.key.commentBefore ?? '', /Cluster \(the Kubernetes default\)/);
  });

  void it('added: namespaceOverride, global.imageRegistry, revisionHistoryLimit, priorityClassName, extra volumes, mounts and containers, sampleLimit and relabelings', () => {
    const e = m('everything-values.yaml');
    for (const { object } of e.objects) assert.equal(object.metadata.namespace, 'monitoring', `${object.kind} in namespaceOverride`);
    assert.ok(((one(e, 'ServiceMonitor').spec as Json).namespaceSelector as Json).matchNames !== undefined);
    assert.deepEqual(((one(e, 'ServiceMonitor').spec as Json).namespaceSelector as Json).matchNames, ['monitoring']);
    assert.match(String(exporter(e).image), /^registry\.example\.com\/virt-exporter\/virt-exporter:/);
    assert.equal((one(e, 'DaemonSet').spec as Json).revisionHistoryLimit, 3);
    assert.equal((one(m('(defaults)'), 'DaemonSet').spec as Json).revisionHistoryLimit, 10);
    assert.equal(podSpec(e).priorityClassName, 'system-node-critical');
    assert.deepEqual(volumeOf(e, 'host-file'), { name: 'host-file', configMap: { name: 'virt-test-host' } });
    assert.deepEqual(mountOf(e, 'host-file'), { name: 'host-file', mountPath: '/etc/virt-exporter/host', readOnly: true });
    const sidecar = (podSpec(e).containers as Json[]).find((c) => c.name === 'sidecar');
    assert.equal(sidecar?.image, 'registry.example.com/busybox:1.36', 'extraContainers go through tpl');
    for (const k of ['ServiceMonitor', 'PodMonitor']) assert.equal((one(e, k).spec as Json).sampleLimit, 50000, k);
    const endpoint = ((one(e, 'ServiceMonitor').spec as Json).endpoints as Json[])[0] as Json;
    assert.deepEqual((endpoint.relabelings as Json[]).map((r) => r.targetLabel ?? r.action), ['node', 'hypervisor']);
    const pm = ((one(e, 'PodMonitor').spec as Json).podMetricsEndpoints as Json[])[0] as Json;
    assert.deepEqual((pm.relabelings as Json[]).map((r) => r.targetLabel ?? r.action), ['node', 'labeldrop']);
    assert.equal((one(m('qemu-values.yaml'), 'ServiceMonitor').spec as Json).sampleLimit, undefined);
  });

  void it('added: the rules as an optional PrometheusRule, with alerts left out and labels added on request', () => {
    assert.equal(find(m('(defaults)'), 'PrometheusRule').length, 0);
    const rule = one(m('everything-values.yaml'), 'PrometheusRule');
    const shipped = YAML.parse(readFileSync(join(ROOT, RULES_FILE), 'utf8')) as { groups: Array<{ name: string; rules: Json[] }> };
    const groups = (rule.spec as Json).groups as Array<{ name: string; rules: Json[] }>;
    assert.deepEqual(groups.map((g) => g.name), shipped.groups.map((g) => g.name));
    assert.deepEqual(groups[0]?.rules, shipped.groups[0]?.rules, 'recording rules as shipped');
    const alerts = groups[1]?.rules ?? [];
    const expected = (shipped.groups[1]?.rules ?? []).filter((r) => r.alert !== 'VirtDomainPausedLong').map((r) => ({ ...r, labels: { ...(r.labels as Json), team: 'virt' } }));
    assert.deepEqual(alerts, expected);
    assert.equal(rule.metadata.labels?.release, 'kube-prometheus-stack');
    // The alerts' job matcher is the shipped one, or the one given.
    assert.match(readFileSync(join(CHART, 'templates/prometheusrule.yaml'), 'utf8'), new RegExp(JOB_SELECTOR.replace(/[.*\\"]/g, (c) => `\\${c}`)));
    const custom = objectsOf(renderExtra('prometheusRule:\n  enabled: true\n  jobSelector: job="hv-metrics"\n')).find((o) => o.object.kind === 'PrometheusRule')?.object;
    const down = (((custom?.spec as Json).groups as Array<{ rules: Json[] }>)[1]?.rules ?? []).find((r) => r.alert === 'VirtExporterDown');
    assert.equal(down?.expr, 'up{job="hv-metrics"} == 0');
    assert.equal((groups[1]?.rules ?? []).find((r) => r.alert === 'VirtExporterDown')?.expr, `up{${JOB_SELECTOR}} == 0`);
  });

  void it("Chart.yaml's kubeVersion is enforced as Helm does", () => {
    assert.doesNotThrow(() => render([], { kubeVersion: 'v1.25.0' }));
    assert.throws(() => render([], { kubeVersion: 'v1.24.9' }), (err: unknown) => err instanceof RenderError && /chart requires kubeVersion: >=1\.25\.0-0 which is incompatible with Kubernetes v1\.24\.9/.test(err.message));
  });

  void it('values.schema.json rejects bad values with a message naming the value', () => {
    const bad: Array<[string, RegExp]> = [
      ['driver: kvm\n', /driver must be one of the following: "qemu", "xen", "libvirt", "test"/],
      ['xen:\n  mode: root\n', /xen\.mode must be one of the following: "proxy", "hypervisor"/],
      ['containerPort: "9477"\n', /containerPort: Invalid type\. Expected: integer, given: string/],
      ['collectorz: {}\n', /Additional property collectorz is not allowed/],
      ['collect:\n  timeout: soon\n', /collect\.timeout: Does not match pattern/],
      ['libvirt:\n  hypervisor: lxc\n', /libvirt\.hypervisor must be one of the following/],
      ['telemetry:\n  resourceAttributes:\n    a: "x\\ny"\n', /telemetry\.resourceAttributes\.a: Does not match pattern/],
      ['prometheus:\n  monitor:\n    sampleLimit: -1\n', /prometheus\.monitor\.sampleLimit: Must be greater than or equal to 0/],
      ['prometheusRule:\n  jobSelector: hv-metrics\n', /prometheusRule\.jobSelector: Does not match pattern/],
    ];
    for (const [values, message] of bad) {
      assert.throws(
        () => renderExtra(values),
        (err: unknown) => err instanceof RenderError && /values don't meet the specifications of the schema/.test(err.message) && message.test(err.message),
        `${values.trim()} is rejected with ${String(message)}`,
      );
    }
  });

  void it("the renderer implements Helm's additions: include, tpl, required, fail, toYaml, fromYaml, toJson, lookup, .Capabilities, .Files", () => {
    const chart = join(tmp, 'fixture');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    mkdirSync(join(chart, 'files'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: fixture\nversion: 1.2.3\nappVersion: "4.5"\n');
    writeFileSync(join(chart, 'values.yaml'), 'greeting: hello\nnested: { a: 1, b: [x, z] }\ntext: "{{ .Values.greeting }} from tpl"\nneed: ""\nboom: false\n');
    writeFileSync(join(chart, 'files/data.yaml'), 'k: v\nlist: [1, 2]\n');
    writeFileSync(join(chart, 'templates/_h.tpl'), '{{- define "fixture.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end }}\n');
    writeFileSync(
      join(chart, 'templates/out.yaml'),
      [
        'include: {{ include "fixture.name" . }}',
        'tpl: {{ tpl .Values.text . | quote }}',
        'toYaml:',
        '  {{- toYaml .Values.nested | nindent 2 }}',
        'fromYaml: {{ (.Files.Get "files/data.yaml" | fromYaml).k }}',
        'toJson: {{ toJson .Values.nested | squote }}',
        'lookup: {{ len (lookup "v1" "Secret" "ns" "s") }}',
        'kube: {{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}',
        'hasMonitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}',
        'template: {{ .Template.Name }} in {{ .Template.BasePath }}',
        'chart: {{ .Chart.Version }}/{{ .Chart.AppVersion }}',
        '{{- if .Values.need }}',
        'required: {{ required "need is required" .Values.need }}',
        '{{- end }}',
        '{{- if .Values.boom }}{{ fail "boom was set" }}{{ end }}',
        '',
      ].join('\n'),
    );
    const r = render([], { chart, name: 'rel', namespace: 'ns', apiVersions: ['monitoring.coreos.com/v1'] });
    assert.deepEqual(YAML.parse(r.manifests['templates/out.yaml'] ?? ''), {
      include: 'fixture-rel',
      tpl: 'hello from tpl',
      toYaml: { a: 1, b: ['x', 'z'] },
      fromYaml: 'v',
      toJson: '{"a":1,"b":["x","z"]}',
      lookup: 0,
      kube: 1.29,
      hasMonitoring: true,
      template: 'fixture/templates/out.yaml in fixture/templates',
      chart: '1.2.3/4.5',
    });
    writeFileSync(join(chart, 'values.yaml'), 'greeting: hello\nnested: {}\ntext: ""\nneed: "x"\nboom: true\n');
    assert.throws(() => render([], { chart }), (err: unknown) => err instanceof RenderError && /boom was set/.test(err.message));
    writeFileSync(join(chart, 'templates/req.yaml'), 'v: {{ required "need2 is required" .Values.need2 }}\n');
    writeFileSync(join(chart, 'values.yaml'), 'greeting: hello\nnested: {}\ntext: ""\nneed: ""\nboom: false\n');
    assert.throws(() => render([], { chart }), (err: unknown) => err instanceof RenderError && /need2 is required/.test(err.message));
  });
});

/**
 * What the libvirt driver needs from a domain's XML description: descriptive
 * attributes for virt_domain_info, interface MACs and aliases, and values
 * picked out of <metadata> by namespace URI and element path. Parsed once per
 * domain and cached by UUID (the cache is refreshed by lifecycle events).
 */
import { DOMParser, type Element } from '@xmldom/xmldom';
import { VirtError } from '../../virt/errors.ts';

export interface MetadataRule {
  /** Label name on virt_domain_info. */
  label: string;
  /** Namespace URI of the elements (the prefix in the XML does not matter). */
  namespace: string;
  /** Element local names from the child of <metadata> down; the last may end in @attr. */
  path: string[];
  attribute?: string;
}

export interface DomainInterface {
  type: string;
  target?: string;
  alias?: string;
  mac?: string;
}

export interface DomainMeta {
  osType?: string;
  arch?: string;
  machine?: string;
  maxMemoryBytes: number;
  vcpus: number;
  interfaces: DomainInterface[];
  /** Values of the metadata rules, in rule order; '' when the element is missing. */
  labels: string[];
}

function child(el: Element, name: string, ns?: string): Element | undefined {
  for (let n = el.firstChild; n !== null; n = n.nextSibling) {
    if (n.nodeType !== 1) continue;
    const e = n as Element;
    if (e.localName === name && (ns === undefined || e.namespaceURI === ns)) return e;
  }
  return undefined;
}

function children(el: Element, name: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n !== null; n = n.nextSibling) if (n.nodeType === 1 && (n as Element).localName === name) out.push(n as Element);
  return out;
}

const attr = (e: Element | undefined, a: string): string | undefined => {
  const v = e?.getAttribute(a);
  return v === null || v === undefined || v === '' ? undefined : v;
};

function memoryBytes(e: Element | undefined): number {
  if (e === undefined) return 0;
  const n = Number((e.textContent ?? '').trim());
  if (!Number.isFinite(n)) return 0;
  const unit = (attr(e, 'unit') ?? 'KiB').toLowerCase();
  const factor: Record<string, number> = { b: 1, bytes: 1, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1e6, g: 1024 ** 3, gib: 1024 ** 3, gb: 1e9 };
  return n * (factor[unit] ?? 1024);
}

/** A value out of <metadata>; '' when any step is missing (never an error). */
function metadataValue(metadata: Element | undefined, rule: MetadataRule): string {
  if (metadata === undefined) return '';
  let cur: Element | undefined = metadata;
  for (const step of rule.path) {
    cur = child(cur, step, rule.namespace);
    if (cur === undefined) return '';
  }
  const v = rule.attribute === undefined ? cur.textContent : cur.getAttribute(rule.attribute);
  return (v ?? '').trim().slice(0, 1024);
}

export function parseDomainXml(xml: string, rules: readonly MetadataRule[] = []): DomainMeta {
  let root: Element | null;
  try {
    const doc = new DOMParser({ onError: () => undefined }).parseFromString(xml, 'text/xml');
    root = doc.documentElement;
  } catch (err) {
    throw new VirtError('VIRT_ERR_RPC', `libvirt sent domain XML that does not parse: ${(err as Error).message}`);
  }
  if (root === null || root.localName !== 'domain') throw new VirtError('VIRT_ERR_RPC', 'libvirt sent domain XML without a <domain> element');
  const os = child(root, 'os');
  const type = os === undefined ? undefined : child(os, 'type');
  const devices = child(root, 'devices');
  const interfaces: DomainInterface[] = (devices === undefined ? [] : children(devices, 'interface')).map((i) => {
    const out: DomainInterface = { type: attr(i, 'type') ?? '' };
    const target = attr(child(i, 'target'), 'dev');
    const alias = attr(child(i, 'alias'), 'name');
    const mac = attr(child(i, 'mac'), 'address');
    if (target !== undefined) out.target = target;
    if (alias !== undefined) out.alias = alias;
    if (mac !== undefined) out.mac = mac.toLowerCase();
    return out;
  });
  const metadata = child(root, 'metadata');
  const meta: DomainMeta = {
    maxMemoryBytes: memoryBytes(child(root, 'memory')),
    vcpus: Number((child(root, 'vcpu')?.textContent ?? '1').trim()) || 1,
    interfaces,
    labels: rules.map((r) => metadataValue(metadata, r)),
  };
  const osType = type?.textContent?.trim();
  if (osType !== undefined && osType !== '') meta.osType = osType;
  const arch = attr(type, 'arch');
  if (arch !== undefined) meta.arch = arch;
  const machine = attr(type, 'machine');
  if (machine !== undefined) meta.machine = machine;
  return meta;
}

/** The UUID in a domain (or save image) XML description. */
export function uuidOfXml(xml: string): string | undefined {
  const m = /<uuid>\s*([0-9a-fA-F-]{32,36})\s*<\/uuid>/.exec(xml);
  return m?.[1]?.toLowerCase();
}

const NOVA_PATHS: Array<[string, string[], string?]> = [
  ['instance_name', ['instance', 'name']],
  ['flavor', ['instance', 'flavor'], 'name'],
  ['project_id', ['instance', 'owner', 'project'], 'uuid'],
  ['project_name', ['instance', 'owner', 'project']],
  ['user_id', ['instance', 'owner', 'user'], 'uuid'],
  ['user_name', ['instance', 'owner', 'user']],
];

export const METADATA_PRESETS: Record<string, readonly MetadataRule[]> = {
  'nova-1.0': NOVA_PATHS.map(([label, path, attribute]) => ({ label, namespace: 'http://openstack.org/xmlns/libvirt/nova/1.0', path, ...(attribute === undefined ? {} : { attribute }) })),
  'nova-1.1': NOVA_PATHS.map(([label, path, attribute]) => ({ label, namespace: 'http://openstack.org/xmlns/libvirt/nova/1.1', path, ...(attribute === undefined ? {} : { attribute }) })),
};

/**
 * Parses "LABEL=NAMESPACE-URI PATH[@ATTR]; ..." (PATH is slash-separated local
 * names from the child of <metadata>), e.g.
 * "team=http://example.com/ns/1 owner/team; cost=http://example.com/ns/1 owner@cost".
 */
export function parseMetadataRules(spec: string, preset = ''): MetadataRule[] {
  const rules: MetadataRule[] = [];
  if (preset !== '') {
    const p = METADATA_PRESETS[preset];
    if (p === undefined) throw new VirtError('VIRT_ERR_CONFIG', `unknown libvirt metadata preset ${JSON.stringify(preset)}; known: ${Object.keys(METADATA_PRESETS).join(', ')}`);
    rules.push(...p);
  }
  for (const part of spec.split(';').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)=(\S+)\s+([A-Za-z_][\w.-]*(?:\/[A-Za-z_][\w.-]*)*)(?:@([A-Za-z_][\w.:-]*))?$/.exec(part);
    if (m === null) throw new VirtError('VIRT_ERR_CONFIG', `libvirt metadata label ${JSON.stringify(part)} is not LABEL=NAMESPACE-URI PATH[@ATTR]`);
    const [, label = '', namespace = '', path = '', attribute] = m;
    if (['domain', 'uuid', 'os_type', 'arch', 'machine'].includes(label) || rules.some((r) => r.label === label)) {
      throw new VirtError('VIRT_ERR_CONFIG', `libvirt metadata label ${JSON.stringify(label)} is given twice or clashes with a built-in label of virt_domain_info`);
    }
    rules.push({ label, namespace, path: path.split('/'), ...(attribute === undefined ? {} : { attribute }) });
  }
  return rules;
}

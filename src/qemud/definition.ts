/**
 * The QEMU domain definition (JSON), validated strictly: unknown keys, wrong
 * types and out-of-range values are refused with VIRT_ERR_XML_ERROR naming the
 * offending key. The normalised form (uuid, targets and MACs filled in) is what
 * virt-qemud stores and what domainDefinition returns. Documented in docs/qemu.md.
 */
import { createHash, randomUUID } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { VirtError } from '../virt/errors.ts';
import { DOMAIN_NAME_PATTERN as NAME_RE, UUID_PATTERN as UUID_RE } from '../util/validate.ts';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const NETNS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const MACHINE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_DISKS = 16;
const MAX_NICS = 16;

export type Accel = 'auto' | 'kvm' | 'tcg';

export interface KernelDef {
  path: string;
  initrd?: string;
  cmdline?: string;
}

export interface DiskDef {
  path: string;
  format: 'raw' | 'qcow2';
  bus: 'virtio' | 'ide';
  target: string;
  readonly: boolean;
}

export interface NicDef {
  model: 'virtio-net-pci' | 'e1000';
  type: 'user' | 'tap';
  ifname?: string;
  netns?: string;
  mac: string;
}

export interface DomainDefinition {
  name: string;
  uuid: string;
  arch: 'x86_64';
  machine: string;
  accel: Accel;
  memoryMiB: number;
  vcpus: number;
  kernel?: KernelDef;
  disks: DiskDef[];
  nics: NicDef[];
  balloon: { enabled: boolean; statsIntervalSeconds?: number };
  console?: { logFile?: string };
}

function bad(path: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_XML_ERROR', `invalid domain definition: ${path} ${why}`);
}

type Obj = Record<string, unknown>;

function obj(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'must be a JSON object');
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) throw bad(path === '(definition)' ? JSON.stringify(k) : `${path}.${k}`, `is not a known key (known: ${allowed.join(', ')})`);
  }
  return v as Obj;
}

function str(o: Obj, key: string, path: string, re?: RegExp): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(`${path}${key}`, `must be a string, got ${JSON.stringify(v)}`);
  if (re !== undefined && !re.test(v)) throw bad(`${path}${key}`, `${JSON.stringify(v)} does not match ${re.source}`);
  return v;
}

function absPath(o: Obj, key: string, path: string): string | undefined {
  const v = str(o, key, path);
  if (v === undefined) return undefined;
  if (!isAbsolute(v) || v.includes('\0') || v.split('/').includes('..')) throw bad(`${path}${key}`, `must be an absolute path without "..", got ${JSON.stringify(v)}`);
  // QEMU option syntax uses ',' as a separator.
  if (v.includes(',')) throw bad(`${path}${key}`, `must not contain ",", got ${JSON.stringify(v)}`);
  return v;
}

function int(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${path}${key}`, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function bool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(`${path}${key}`, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(o: Obj, key: string, path: string, values: readonly T[]): T | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw bad(`${path}${key}`, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function required<T>(v: T | undefined, path: string): T {
  if (v === undefined) throw bad(path, 'is required');
  return v;
}

/** Target names: vda..vdp for virtio, hda..hdd for IDE (two buses, two units each). */
export function defaultTarget(bus: 'virtio' | 'ide', used: ReadonlySet<string>): string {
  const prefix = bus === 'virtio' ? 'vd' : 'hd';
  const max = bus === 'virtio' ? MAX_DISKS : 4;
  for (let i = 0; i < max; i++) {
    const t = prefix + String.fromCharCode(97 + i);
    if (!used.has(t)) return t;
  }
  throw bad('disks', `has more ${bus} disks than targets ${prefix}a..${prefix}${String.fromCharCode(96 + max)}`);
}

/** A stable locally-administered MAC derived from the UUID and NIC index. */
export function derivedMac(uuid: string, index: number): string {
  const h = createHash('sha256').update(`${uuid}/${index}`).digest();
  return ['52', '54', '00', ...[0, 1, 2].map((i) => (h[i] ?? 0).toString(16).padStart(2, '0'))].join(':');
}

export function validateDefinition(input: unknown): DomainDefinition {
  const o = obj(input, '(definition)', ['name', 'uuid', 'arch', 'machine', 'accel', 'memoryMiB', 'vcpus', 'kernel', 'disks', 'nics', 'balloon', 'console']);
  const name = required(str(o, 'name', '', NAME_RE), 'name');
  const uuidIn = str(o, 'uuid', '');
  let uuid: string;
  if (uuidIn === undefined) uuid = randomUUID();
  else {
    uuid = uuidIn.toLowerCase();
    if (!UUID_RE.test(uuid)) throw bad('uuid', `must be an 8-4-4-4-12 hexadecimal UUID, got ${JSON.stringify(uuidIn)}`);
  }
  const arch = oneOf(o, 'arch', '', ['x86_64'] as const) ?? 'x86_64';
  const machine = str(o, 'machine', '', MACHINE_RE) ?? 'pc';
  const accel = oneOf(o, 'accel', '', ['auto', 'kvm', 'tcg'] as const) ?? 'auto';
  const memoryMiB = required(int(o, 'memoryMiB', '', 16, 1024 * 1024), 'memoryMiB');
  const vcpus = required(int(o, 'vcpus', '', 1, 255), 'vcpus');

  const def: DomainDefinition = { name, uuid, arch, machine, accel, memoryMiB, vcpus, disks: [], nics: [], balloon: { enabled: true } };

  if (o['kernel'] !== undefined) {
    const k = obj(o['kernel'], 'kernel', ['path', 'initrd', 'cmdline']);
    const kernel: KernelDef = { path: required(absPath(k, 'path', 'kernel.'), 'kernel.path') };
    const initrd = absPath(k, 'initrd', 'kernel.');
    if (initrd !== undefined) kernel.initrd = initrd;
    const cmdline = str(k, 'cmdline', 'kernel.');
    if (cmdline !== undefined) {
      if (cmdline.length > 4096 || /[\0\n]/.test(cmdline)) throw bad('kernel.cmdline', 'must be one line of at most 4096 characters');
      kernel.cmdline = cmdline;
    }
    def.kernel = kernel;
  }

  if (o['disks'] !== undefined) {
    if (!Array.isArray(o['disks'])) throw bad('disks', 'must be an array');
    if (o['disks'].length > MAX_DISKS) throw bad('disks', `has more than ${MAX_DISKS} entries`);
    const used = new Set<string>();
    const raw = o['disks'] as unknown[];
    const parsed = raw.map((d, i) => {
      const p = `disks[${i}].`;
      const dk = obj(d, `disks[${i}]`, ['path', 'format', 'bus', 'target', 'readonly']);
      const bus = oneOf(dk, 'bus', p, ['virtio', 'ide'] as const) ?? 'virtio';
      const target = str(dk, 'target', p, bus === 'virtio' ? /^vd[a-p]$/ : /^hd[a-d]$/);
      if (target !== undefined) {
        if (used.has(target)) throw bad(`${p}target`, `${JSON.stringify(target)} is used twice`);
        used.add(target);
      }
      return {
        path: required(absPath(dk, 'path', p), `${p}path`),
        format: oneOf(dk, 'format', p, ['raw', 'qcow2'] as const) ?? 'raw',
        bus,
        target,
        readonly: bool(dk, 'readonly', p) ?? false,
      };
    });
    def.disks = parsed.map((d) => {
      const target = d.target ?? defaultTarget(d.bus, used);
      used.add(target);
      return { ...d, target };
    });
  }

  if (o['nics'] !== undefined) {
    if (!Array.isArray(o['nics'])) throw bad('nics', 'must be an array');
    if (o['nics'].length > MAX_NICS) throw bad('nics', `has more than ${MAX_NICS} entries`);
    const ifnames = new Set<string>();
    def.nics = (o['nics'] as unknown[]).map((n, i) => {
      const p = `nics[${i}].`;
      const nk = obj(n, `nics[${i}]`, ['model', 'type', 'ifname', 'netns', 'mac']);
      const type = required(oneOf(nk, 'type', p, ['user', 'tap'] as const), `${p}type`);
      const ifname = str(nk, 'ifname', p, IFNAME_RE);
      if (type === 'tap' && ifname === undefined) throw bad(`${p}ifname`, 'is required for a tap NIC');
      if (type === 'user' && ifname !== undefined) throw bad(`${p}ifname`, 'is only valid for a tap NIC');
      if (ifname !== undefined) {
        if (ifnames.has(ifname)) throw bad(`${p}ifname`, `${JSON.stringify(ifname)} is used twice`);
        ifnames.add(ifname);
      }
      const netns = str(nk, 'netns', p, NETNS_RE);
      const macIn = str(nk, 'mac', p);
      const mac = macIn === undefined ? derivedMac(uuid, i) : macIn.toLowerCase();
      if (!MAC_RE.test(mac)) throw bad(`${p}mac`, `must be six colon-separated hex octets, got ${JSON.stringify(macIn)}`);
      const nic: NicDef = { model: oneOf(nk, 'model', p, ['virtio-net-pci', 'e1000'] as const) ?? 'virtio-net-pci', type, mac };
      if (ifname !== undefined) nic.ifname = ifname;
      if (netns !== undefined) nic.netns = netns;
      return nic;
    });
    const namespaces = new Set(def.nics.map((n) => n.netns).filter((n) => n !== undefined));
    if (namespaces.size > 1) throw bad('nics', `name more than one netns (${[...namespaces].join(', ')}); QEMU runs in one network namespace`);
  }

  if (o['balloon'] !== undefined) {
    const b = obj(o['balloon'], 'balloon', ['enabled', 'statsIntervalSeconds']);
    def.balloon = { enabled: bool(b, 'enabled', 'balloon.') ?? true };
    const iv = int(b, 'statsIntervalSeconds', 'balloon.', 0, 3600);
    if (iv !== undefined) def.balloon.statsIntervalSeconds = iv;
  }

  if (o['console'] !== undefined) {
    const c = obj(o['console'], 'console', ['logFile']);
    const logFile = absPath(c, 'logFile', 'console.');
    def.console = logFile === undefined ? {} : { logFile };
  }
  return def;
}

/** The network namespace QEMU must run in, if any NIC names one. */
export function domainNetns(def: DomainDefinition): string | undefined {
  return def.nics.find((n) => n.netns !== undefined)?.netns;
}

/** A stored definition, or undefined when it no longer validates. */
export function safeDefinition(v: unknown): DomainDefinition | undefined {
  try {
    return validateDefinition(v);
  } catch {
    return undefined;
  }
}

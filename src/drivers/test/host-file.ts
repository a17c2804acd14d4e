import type { HostTopology } from '../types.ts';
import { randomUUID } from 'node:crypto';
import {
  invalid,
  asArray,
  asBoolean,
  asEnum,
  asNumber,
  asObject,
  asString,
  optional,
  DOMAIN_NAME_PATTERN,
  DOMAIN_NAME_RULE,
  UUID_PATTERN,
} from '../../util/validate.ts';

/**
 * The test driver's host description: what `test:///PATH.json` loads and what
 * `define` takes. Rates are per second of running time and drive the
 * simulated counters.
 */
export interface TestDiskSpec {
  target: string;
  path: string;
  capacityGiB: number;
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
}

export interface TestNicSpec {
  name: string;
  mac: string;
  /** "user" NICs have no host-side counters. */
  type: 'tap' | 'user';
  rxBytesPerSecond: number;
  txBytesPerSecond: number;
}

export interface TestDomainSpec {
  name: string;
  uuid: string;
  state: 'running' | 'paused' | 'shutoff';
  memoryMiB: number;
  maxMemoryMiB: number;
  vcpus: number;
  maxVcpus: number;
  osType: string;
  arch: string;
  machine: string;
  /** Average busy fraction of each vCPU while running (0..1). */
  load: number;
  balloon: boolean;
  autostart: boolean;
  disks: TestDiskSpec[];
  nics: TestNicSpec[];
}

export interface TestHostSpec extends HostTopology {
  hostname: string;
  model: string;
  memoryMiB: number;
}

export interface TestHostFile {
  host: TestHostSpec;
  domains: TestDomainSpec[];
}

const DOMAIN_KEYS = [
  'name', 'uuid', 'state', 'memoryMiB', 'maxMemoryMiB', 'vcpus', 'maxVcpus', 'osType', 'arch', 'machine', 'load', 'balloon', 'autostart', 'disks', 'nics',
] as const;
const DISK_KEYS = ['target', 'path', 'capacityGiB', 'readBytesPerSecond', 'writeBytesPerSecond'] as const;
const NIC_KEYS = ['name', 'mac', 'type', 'rxBytesPerSecond', 'txBytesPerSecond'] as const;
const HOST_KEYS = ['hostname', 'model', 'cpus', 'mhz', 'nodes', 'sockets', 'cores', 'threads', 'memoryMiB'] as const;
const DEVICE_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;
const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
export const MAX_TEST_DOMAINS = 20_000;

function rate(obj: Record<string, unknown>, key: string, path: string, fallback: number): number {
  return optional(obj, key, path, (v, p) => asNumber(v, p, { min: 0, max: 1e12 })) ?? fallback;
}

export function parseDisk(value: unknown, path: string, index: number): TestDiskSpec {
  const o = asObject(value, path, DISK_KEYS);
  const target = optional(o, 'target', path, (v, p) => asString(v, p, { pattern: DEVICE_PATTERN, what: 'a device name like vda' })) ?? `vd${String.fromCharCode(97 + (index % 26))}`;
  return {
    target,
    path: asString(o.path, `${path}.path`, { pattern: /^\//, what: 'an absolute path' }),
    capacityGiB: optional(o, 'capacityGiB', path, (v, p) => asNumber(v, p, { min: 0, max: 1 << 20 })) ?? 10,
    readBytesPerSecond: rate(o, 'readBytesPerSecond', path, 200_000),
    writeBytesPerSecond: rate(o, 'writeBytesPerSecond', path, 100_000),
  };
}

export function parseNic(value: unknown, path: string, index: number): TestNicSpec {
  const o = asObject(value, path, NIC_KEYS);
  return {
    name: optional(o, 'name', path, (v, p) => asString(v, p, { pattern: DEVICE_PATTERN, what: 'an interface name like vnet0' })) ?? `vnet${index}`,
    mac: optional(o, 'mac', path, (v, p) => asString(v, p, { pattern: MAC_PATTERN, what: 'a MAC address' }).toLowerCase()) ?? `52:54:00:00:00:${(index & 0xff).toString(16).padStart(2, '0')}`,
    type: optional(o, 'type', path, (v, p) => asEnum(v, p, ['tap', 'user'] as const)) ?? 'tap',
    rxBytesPerSecond: rate(o, 'rxBytesPerSecond', path, 50_000),
    txBytesPerSecond: rate(o, 'txBytesPerSecond', path, 20_000),
  };
}

/** Validates one domain; `defaultState` is what a definition without a state gets. */
export function parseDomain(value: unknown, path: string, defaultState: TestDomainSpec['state'] = 'shutoff'): TestDomainSpec {
  const o = asObject(value, path, DOMAIN_KEYS);
  const memoryMiB = asNumber(o.memoryMiB, `${path}.memoryMiB`, { integer: true, min: 1, max: 16 << 20 });
  const maxMemoryMiB = optional(o, 'maxMemoryMiB', path, (v, p) => asNumber(v, p, { integer: true, min: 1, max: 16 << 20 })) ?? memoryMiB;
  if (maxMemoryMiB < memoryMiB) throw invalid(`${path}.maxMemoryMiB`, `must be at least memoryMiB (${memoryMiB}), got ${maxMemoryMiB}`);
  const vcpus = asNumber(o.vcpus, `${path}.vcpus`, { integer: true, min: 1, max: 4096 });
  const maxVcpus = optional(o, 'maxVcpus', path, (v, p) => asNumber(v, p, { integer: true, min: 1, max: 4096 })) ?? vcpus;
  if (maxVcpus < vcpus) throw invalid(`${path}.maxVcpus`, `must be at least vcpus (${vcpus}), got ${maxVcpus}`);
  const disks = (optional(o, 'disks', path, (v, p) => asArray(v, p, 64)) ?? []).map((d, i) => parseDisk(d, `${path}.disks[${i}]`, i));
  const nics = (optional(o, 'nics', path, (v, p) => asArray(v, p, 64)) ?? []).map((n, i) => parseNic(n, `${path}.nics[${i}]`, i));
  unique(disks.map((d) => d.target), `${path}.disks`, 'target');
  unique(nics.map((n) => n.name), `${path}.nics`, 'name');
  return {
    name: asString(o.name, `${path}.name`, { pattern: DOMAIN_NAME_PATTERN, what: DOMAIN_NAME_RULE }),
    uuid: (optional(o, 'uuid', path, (v, p) => asString(v, p, { pattern: UUID_PATTERN, what: 'a UUID' })) ?? randomUUID()).toLowerCase(),
    state: optional(o, 'state', path, (v, p) => asEnum(v, p, ['running', 'paused', 'shutoff'] as const)) ?? defaultState,
    memoryMiB,
    maxMemoryMiB,
    vcpus,
    maxVcpus,
    osType: optional(o, 'osType', path, (v, p) => asEnum(v, p, ['hvm', 'linux', 'xen'] as const)) ?? 'hvm',
    arch: optional(o, 'arch', path, (v, p) => asString(v, p, { pattern: /^[a-z0-9_]{1,16}$/, what: 'an architecture' })) ?? 'x86_64',
    machine: optional(o, 'machine', path, (v, p) => asString(v, p, { pattern: /^[A-Za-z0-9_.-]{1,32}$/, what: 'a machine type' })) ?? 'pc',
    load: optional(o, 'load', path, (v, p) => asNumber(v, p, { min: 0, max: 1 })) ?? 0.2,
    balloon: optional(o, 'balloon', path, asBoolean) ?? true,
    autostart: optional(o, 'autostart', path, asBoolean) ?? false,
    disks,
    nics,
  };
}

function unique(values: string[], path: string, what: string): void {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) throw invalid(path, `duplicate ${what} ${JSON.stringify(v)}`);
    seen.add(v);
  }
}

export function parseHostFile(value: unknown): TestHostFile {
  const root = asObject(value, '$', ['host', 'domains']);
  const h = asObject(root.host ?? {}, '$.host', HOST_KEYS);
  const int = (key: string, fallback: number, max: number): number =>
    optional(h, key, '$.host', (v, p) => asNumber(v, p, { integer: true, min: 1, max })) ?? fallback;
  const host: TestHostSpec = {
    hostname: optional(h, 'hostname', '$.host', (v, p) => asString(v, p, { pattern: /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/, what: 'a host name' })) ?? 'testhost',
    model: optional(h, 'model', '$.host', (v, p) => asString(v, p, { maxLength: 32 })) ?? 'x86_64',
    cpus: int('cpus', 16, 65536),
    mhz: int('mhz', 2400, 100_000),
    nodes: int('nodes', 1, 1024),
    sockets: int('sockets', 1, 1024),
    cores: int('cores', 8, 65536),
    threads: int('threads', 2, 64),
    memoryMiB: int('memoryMiB', 65536, 1 << 30),
  };
  const domains = asArray(root.domains ?? [], '$.domains', MAX_TEST_DOMAINS).map((d, i) => parseDomain(d, `$.domains[${i}]`, 'running'));
  unique(domains.map((d) => d.name), '$.domains', 'domain name');
  unique(domains.map((d) => d.uuid), '$.domains', 'domain uuid');
  return { host, domains };
}

/**
 * Typed views of Xend's domain and node S-expressions (protocols.md §2.6-2.8),
 * converted to base units: memory MiB -> bytes, cpu_time float seconds.
 */
import { VirtError } from '../../virt/errors.ts';
import type { DomainState, HostInfo } from '../types.ts';
import { isList, nodeValue, type Sexpr } from './sexpr.ts';

const MIB = 1024 * 1024;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Xend before 3.0.3 printed UUIDs as 8-8-8-8.
const OLD_UUID_RE = /^([0-9a-f]{8})-([0-9a-f]{4})([0-9a-f]{4})-([0-9a-f]{4})([0-9a-f]{4})-([0-9a-f]{8})$/;

export interface XendDisk {
  dev: string;
  uname?: string;
  mode?: string;
}
export interface XendNic {
  mac?: string;
  bridge?: string;
  vifname?: string;
}

export interface XendDomain {
  name: string;
  uuid: string;
  /** null for inactive managed domains (no domid in the reply). */
  domid: number | null;
  state: DomainState;
  stateLetters?: string;
  memoryBytes: number;
  maxMemoryBytes: number;
  vcpus: number;
  onlineVcpus?: number;
  cpuTimeSeconds: number;
  shutdownReason?: string;
  startTime?: number;
  osType?: string;
  autostart?: boolean;
  disks: XendDisk[];
  nics: XendNic[];
}

function bad(message: string): never {
  throw new VirtError('VIRT_ERR_RPC', `unexpected Xend reply: ${message}`, { driver: 'xen/xend' });
}

function num(root: Sexpr, path: string, required: boolean): number | undefined {
  const text = nodeValue(root, path);
  if (text === undefined) {
    if (required) bad(`missing ${path}`);
    return undefined;
  }
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) bad(`${path} is not a number: ${JSON.stringify(text.slice(0, 40))}`);
  return v;
}

export function canonicalUuid(text: string): string | undefined {
  const t = text.toLowerCase();
  if (UUID_RE.test(t)) return t;
  const m = OLD_UUID_RE.exec(t);
  if (m !== null) return `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}${m[6]}`;
  return undefined;
}

/**
 * Xend's six state letters r b p s c d. Checked in libvirt 0.4's order
 * c, s, d, p, b, r: s -> shutoff and d -> shutdown (pitfall 1; 0.1.x had
 * them the other way round). No state at all: inactive -> shutoff, else nostate.
 */
export function xendStateToDomainState(letters: string | undefined, inactive: boolean): DomainState {
  if (letters === undefined || letters === '') return inactive ? 'shutoff' : 'nostate';
  const has = (c: string): boolean => letters.includes(c);
  if (has('c')) return 'crashed';
  if (has('s')) return 'shutoff';
  if (has('d')) return 'shutdown';
  if (has('p')) return 'paused';
  if (has('b')) return 'blocked';
  if (has('r')) return 'running';
  return inactive ? 'shutoff' : 'nostate';
}

/** The keys parseXendDomain reads (first occurrence of each wins, as libvirt's sexpr_lookup). */
const DOMAIN_KEYS = new Set(['name', 'uuid', 'domid', 'state', 'memory', 'maxmem', 'image', 'vcpus', 'online_vcpus', 'cpu_time', 'shutdown_reason', 'start_time', 'on_xend_start']);

/**
 * The first child list of each key parseXendDomain reads, and the devices,
 * found in one pass over the domain (looking each key up by scanning and
 * copying the children was most of a 500-domain parse).
 */
function keyed(node: Sexpr[]): { first: Record<string, Sexpr[] | undefined>; devices: Sexpr[][] } {
  const first: Record<string, Sexpr[] | undefined> = Object.create(null) as Record<string, Sexpr[] | undefined>;
  const devices: Sexpr[][] = [];
  for (let i = 1; i < node.length; i++) {
    const c = node[i];
    if (!isList(c)) continue;
    const k = c[0];
    if (typeof k !== 'string') continue;
    if (k === 'device') devices.push(c);
    else if (DOMAIN_KEYS.has(k) && first[k] === undefined) first[k] = c;
  }
  return { first, devices };
}

function numValue(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) bad(`${name} is not a number: ${JSON.stringify(text.slice(0, 40))}`);
  return v;
}

export function parseXendDomain(sx: Sexpr): XendDomain {
  if (!isList(sx) || sx[0] !== 'domain') bad('expected a (domain ...) expression');
  const { first, devices } = keyed(sx);
  const val = (k: string): string | undefined => {
    const v = first[k]?.[1];
    return typeof v === 'string' ? v : undefined;
  };
  const n = (k: string): number | undefined => numValue(k, val(k));
  const name = val('name');
  if (name === undefined || name === '') bad('domain without a name');
  const uuidText = val('uuid');
  const uuid = uuidText === undefined ? undefined : canonicalUuid(uuidText);
  if (uuid === undefined) bad(`domain ${name} has no valid uuid`);
  const domidNum = n('domid');
  const domid = domidNum === undefined ? null : domidNum;
  if (domid !== null && (!Number.isInteger(domid) || domid < 0 || domid > 0x7fef)) bad(`domain ${name}: bad domid ${domid}`);
  const letters = val('state');
  const memoryMiB = n('memory') ?? 0;
  const maxMiB = n('maxmem') ?? memoryMiB;
  const image = first.image;
  const imageKind = isList(image) && isList(image[1]) ? image[1][0] : undefined;
  const disks: XendDisk[] = [];
  const nics: XendNic[] = [];
  for (const dev of devices) {
    const inner = dev[1];
    if (!isList(inner)) continue;
    const kind = inner[0];
    if (kind === 'vbd' || kind === 'tap' || kind === 'tap2') {
      const d = nodeValue(inner, 'dev');
      if (d !== undefined) disks.push({ dev: d.replace(/:(disk|cdrom)$/, ''), uname: nodeValue(inner, 'uname'), mode: nodeValue(inner, 'mode') });
    } else if (kind === 'vif') {
      nics.push({ mac: nodeValue(inner, 'mac'), bridge: nodeValue(inner, 'bridge'), vifname: nodeValue(inner, 'vifname') });
    }
  }
  const onStart = val('on_xend_start');
  return {
    name,
    uuid,
    domid,
    state: xendStateToDomainState(letters, domid === null),
    stateLetters: letters,
    memoryBytes: memoryMiB * MIB,
    maxMemoryBytes: maxMiB * MIB,
    vcpus: n('vcpus') ?? 0,
    onlineVcpus: n('online_vcpus'),
    cpuTimeSeconds: n('cpu_time') ?? 0,
    shutdownReason: val('shutdown_reason'),
    startTime: n('start_time'),
    osType: typeof imageKind === 'string' ? imageKind : undefined,
    autostart: onStart === undefined ? undefined : onStart === 'start',
    disks,
    nics,
  };
}

export function parseXendNode(sx: Sexpr): HostInfo {
  if (!isList(sx) || sx[0] !== 'node') bad('expected a (node ...) expression');
  const cpus = num(sx, 'nr_cpus', true) as number;
  const nodes = num(sx, 'nr_nodes', false) ?? 1;
  const cores = num(sx, 'cores_per_socket', false) ?? 1;
  const threads = num(sx, 'threads_per_core', false) ?? 1;
  // Xen 3.2 stopped reporting sockets_per_node usefully; derive it as libvirt did.
  const perNode = num(sx, 'sockets_per_node', false);
  const sockets = perNode !== undefined && perNode > 0 ? perNode * nodes : Math.max(1, Math.floor(cpus / (nodes * cores * threads)));
  const major = nodeValue(sx, 'xen_major') ?? '';
  const minor = nodeValue(sx, 'xen_minor') ?? '';
  const extra = nodeValue(sx, 'xen_extra') ?? '';
  return {
    hostname: nodeValue(sx, 'host') ?? '',
    model: nodeValue(sx, 'machine') ?? '',
    cpus,
    mhz: num(sx, 'cpu_mhz', false) ?? 0,
    nodes,
    sockets,
    cores,
    threads,
    memoryBytes: (num(sx, 'total_memory', true) as number) * MIB,
    freeMemoryBytes: (num(sx, 'free_memory', false) ?? 0) * MIB,
    hypervisor: 'xen',
    hypervisorVersion: major === '' ? '' : `${major}.${minor}${extra}`,
  };
}

/** xend_config_format (absent = 1, before 3.0.3). */
export function xendConfigFormat(node: Sexpr): number {
  const v = nodeValue(node, 'xend_config_format');
  const n = v === undefined ? 1 : Number(v);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

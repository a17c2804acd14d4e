import { DOMAIN_STATES, VCPU_STATES, type BulkStats, type DomainStats, type ReadError } from '../drivers/types.ts';

/**
 * Checks a driver's bulk reading at the front-end boundary, so a malformed
 * reply (a driver bug, a hostile or corrupted backend) costs the domain or
 * device it concerns and never the whole scrape. Bad domains are dropped
 * with a VIRT_ERR_RPC entry in errors; bad devices are dropped from their
 * domain. Cheap enough for 10,000 domains per collection.
 */
const STATES: ReadonlySet<string> = new Set(DOMAIN_STATES);
const VSTATES: ReadonlySet<string> = new Set(VCPU_STATES);

type Rec = Record<string, unknown>;

function isObj(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function num(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}
function optNum(v: unknown): boolean {
  return v === undefined || num(v);
}
function str(v: unknown, max = 1024): boolean {
  return typeof v === 'string' && v.length <= max;
}
function allOptNum(o: Rec, keys: readonly string[]): boolean {
  for (const k of keys) if (!optNum(o[k])) return false;
  return true;
}

const BLOCK_REQUIRED = ['readBytes', 'writeBytes', 'readRequests', 'writeRequests'] as const;
const BLOCK_OPTIONAL = ['flushRequests', 'readTimeSeconds', 'writeTimeSeconds', 'flushTimeSeconds', 'errors', 'capacityBytes', 'allocationBytes'] as const;
const NET_COUNTERS = ['rxBytes', 'rxPackets', 'rxErrors', 'rxDrops', 'txBytes', 'txPackets', 'txErrors', 'txDrops'] as const;
const GUEST = ['totalBytes', 'freeBytes', 'availableBytes', 'diskCachesBytes', 'swapInBytes', 'swapOutBytes', 'majorFaults', 'minorFaults', 'lastUpdateSeconds'] as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Why a value is not a DomainRef (name, UUID, id or null), or undefined when it is one. */
export function refProblem(r: unknown): string | undefined {
  if (!isObj(r)) return 'expected a domain reference object';
  if (!str(r.name, 256) || r.name === '') return 'no domain name';
  if (typeof r.uuid !== 'string' || !UUID.test(r.uuid)) return `uuid ${JSON.stringify(r.uuid)} is not a UUID`;
  if (r.id !== null && !(typeof r.id === 'number' && Number.isSafeInteger(r.id) && r.id >= 0)) return `id ${JSON.stringify(r.id)} is neither null nor a whole number`;
  return undefined;
}

/**
 * Why a value is not a DomainInfo, or undefined when it is one. Optional
 * fields that are malformed but harmless (start time, labels) are dropped.
 */
export function domainInfoProblem(i: unknown): string | undefined {
  if (!isObj(i)) return 'expected a domain info object';
  if (!str(i.name, 256) || !str(i.uuid, 64)) return 'info without a name or uuid';
  if (!STATES.has(i.state as string)) return `unknown state ${JSON.stringify(i.state)}`;
  if (!num(i.maxMemoryBytes) || !num(i.memoryBytes) || !num(i.vcpus) || !num(i.cpuTimeSeconds)) return 'info with a non-numeric memory, vCPU or CPU field';
  if (i.id !== null && i.id !== undefined && !num(i.id)) return 'info with a non-numeric id';
  for (const k of ['osType', 'arch', 'machine', 'stateReason'] as const) if (i[k] !== undefined && !str(i[k], 256)) return `info.${k} is not a short string`;
  for (const k of ['autostart', 'persistent', 'managedSave'] as const) if (i[k] !== undefined && typeof i[k] !== 'boolean') return `info.${k} is not a boolean`;
  if (i.startTimeSeconds !== undefined && !num(i.startTimeSeconds)) delete i.startTimeSeconds;
  if (i.labels !== undefined) {
    const l = i.labels;
    if (!isObj(l) || Object.keys(l).length > 64 || !Object.entries(l).every(([k, v]) => /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/.test(k) && str(v, 1024))) delete i.labels;
  }
  return undefined;
}

const HOST_NUMBERS = ['cpus', 'mhz', 'nodes', 'sockets', 'cores', 'threads', 'memoryBytes'] as const;
const HOST_STRINGS = ['hostname', 'model', 'hypervisor', 'hypervisorVersion'] as const;

/** Why a value is not a HostInfo, or undefined when it is one. */
export function hostInfoProblem(h: unknown): string | undefined {
  if (!isObj(h)) return 'expected a host info object';
  for (const k of HOST_NUMBERS) if (!num(h[k]) || (h[k] as number) < 0) return `${k} is not a non-negative number`;
  if (!optNum(h.freeMemoryBytes)) return 'freeMemoryBytes is not a number';
  for (const k of HOST_STRINGS) if (!str(h[k], 256)) return `${k} is not a short string`;
  return undefined;
}

/** Why a domain entry is unusable, or undefined when it is fine (devices may have been pruned). */
function checkDomain(d: unknown): string | undefined {
  if (!isObj(d) || !isObj(d.info)) return 'entry without info';
  const why = domainInfoProblem(d.info);
  if (why !== undefined) return why;
  if (d.cpu !== undefined && !(isObj(d.cpu) && optNum(d.cpu.userSeconds) && optNum(d.cpu.systemSeconds))) delete d.cpu;
  if (d.vcpus !== undefined) {
    d.vcpus = Array.isArray(d.vcpus) ? d.vcpus.filter((v: unknown) => isObj(v) && num(v.id) && VSTATES.has(v.state as string) && optNum(v.timeSeconds) && optNum(v.delaySeconds) && optNum(v.cpu)) : undefined;
  }
  if (d.memory !== undefined) {
    const m = d.memory;
    if (!isObj(m) || !num(m.maximumBytes) || !num(m.currentBytes) || !optNum(m.balloonBytes) || !optNum(m.rssBytes)) delete d.memory;
    else if (m.guest !== undefined && !(isObj(m.guest) && allOptNum(m.guest, GUEST))) delete m.guest;
  }
  if (d.block !== undefined) {
    d.block = Array.isArray(d.block)
      ? d.block.filter((b: unknown) => isObj(b) && str(b.device, 256) && (b.path === undefined || str(b.path, 4096)) && BLOCK_REQUIRED.every((k) => num(b[k])) && allOptNum(b, BLOCK_OPTIONAL))
      : undefined;
  }
  if (d.net !== undefined) {
    d.net = Array.isArray(d.net)
      ? d.net.filter((n: unknown) => isObj(n) && str(n.interface, 256) && (n.mac === undefined || str(n.mac, 64)) && (n.counters === null || (isObj(n.counters) && NET_COUNTERS.every((k) => num((n.counters as Rec)[k])))))
      : undefined;
  }
  return undefined;
}

/** Readings this module built: checking one again (front-end after client stub) costs nothing. */
const CHECKED = new WeakSet<object>();

/** `peer` names who sent the reading in error messages ("driver xen", "virt-qemud"). */
export function checkBulkStats(raw: unknown, peer: string): BulkStats {
  if (isObj(raw) && CHECKED.has(raw)) return raw as unknown as BulkStats;
  if (!isObj(raw) || !Array.isArray(raw.domains)) {
    return { domains: [], errors: [{ code: 'VIRT_ERR_RPC', message: `${peer} returned a bulk reading without a domain list` }] };
  }
  const errors: ReadError[] = [];
  if (Array.isArray(raw.errors)) {
    for (const e of raw.errors as unknown[]) {
      if (isObj(e) && str(e.code, 64) && str(e.message, 4096)) {
        errors.push({ code: e.code as string, message: e.message as string, ...(str(e.domain, 256) ? { domain: e.domain as string } : {}), ...(typeof e.group === 'string' ? { group: e.group as ReadError['group'] } : {}) });
      }
    }
  }
  const domains: DomainStats[] = [];
  for (const d of raw.domains as unknown[]) {
    const why = checkDomain(d);
    if (why === undefined) domains.push(d as DomainStats);
    else {
      const name = isObj(d) && isObj(d.info) && typeof d.info.name === 'string' ? d.info.name.slice(0, 256) : undefined;
      errors.push({ code: 'VIRT_ERR_RPC', message: `${peer} returned a malformed reading: ${why}`, ...(name === undefined ? {} : { domain: name }) });
    }
  }
  const checked = { domains, errors };
  CHECKED.add(checked);
  return checked;
}

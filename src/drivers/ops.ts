/**
 * The operation table, as libvirt's remote_protocol.x is for its RPC layer:
 * every operation once, with whether it writes, how a client puts its
 * arguments on the wire, the check a server applies to those arguments, the
 * check a client applies to the reply, and the admin API's least role.
 *
 * Everything else is derived from it: DriverOperations and WRITE_OPERATIONS
 * (driver.ts), the virt-qemud protocol's read/write lists and its dispatch
 * (qemud-shared/protocol.ts, qemud/server.ts), the qemu driver's client stubs
 * (clientStubs below) and the admin API's role table (http/admin/roles.ts).
 *
 * Argument checks throw VIRT_ERR_INVALID_ARG naming the bad argument; reply
 * checks throw VIRT_ERR_RPC naming what is wrong (a peer that sends a reply
 * of the wrong shape is a protocol failure, never a crash further on).
 */
import { VirtError } from '../virt/errors.ts';
import { checkBulkStats, domainInfoProblem, hostInfoProblem, refProblem } from '../virt/readings.ts';
import {
  STATS_GROUPS,
  type BulkReadOptions,
  type BulkStats,
  type DomainInfo,
  type DomainRef,
  type HostInfo,
  type ListOptions,
  type ReadOptions,
  type RestoreOptions,
  type ShutdownOptions,
  type StatsGroup,
} from './types.ts';

/** Roles of the admin API, ordered: each includes the ones below it. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a client stub sends: JSON arguments, and the caller's abort signal (reads). */
export interface Wire {
  args: unknown[];
  signal?: AbortSignal | undefined;
}

/**
 * How the admin API offers an operation: `collection` is GET/POST on
 * /api/v1/domains, `domain` GET/DELETE on /api/v1/domains/{id}, `action`
 * POST on /api/v1/domains/{id}/{action}.
 */
export interface AdminEntry {
  readonly action: string;
  readonly role: Role;
  readonly route: 'collection' | 'domain' | 'action';
}

export interface OpSpec<P extends unknown[], R, A extends readonly unknown[], D extends boolean = boolean> {
  /** Changes state: refused on read-only connections and the read-only socket, never retried. */
  readonly write: boolean;
  /** A driver operation (DriverOperations); false: spoken only between the qemu driver and virt-qemud. */
  readonly driver: D;
  /** Driver arguments to wire arguments. */
  readonly encode: (...args: P) => Wire;
  /** Checks wire arguments as a server receives them; the typed arguments or VIRT_ERR_INVALID_ARG. */
  readonly args: (raw: readonly unknown[]) => A;
  /** Checks a reply from another process; the typed result or VIRT_ERR_RPC. */
  readonly result: (raw: unknown, peer: string) => R;
  /** How the admin API offers it; absent: not offered there. */
  readonly admin?: AdminEntry | undefined;
}

/** Keeps each entry's literal types (driver flag, admin action) for the types derived from the table. */
function op<P extends unknown[], R, A extends readonly unknown[], D extends boolean, const M extends AdminEntry | undefined = undefined>(spec: OpSpec<P, R, A, D> & { readonly admin?: M }): OpSpec<P, R, A, D> & { readonly admin: M } {
  return { admin: undefined as M, ...spec };
}

type Obj = Record<string, unknown>;

function invalid(message: string): VirtError {
  return new VirtError('VIRT_ERR_INVALID_ARG', message);
}

function arity(raw: readonly unknown[], max: number): void {
  if (raw.length > max) throw invalid(`at most ${max} argument${max === 1 ? '' : 's'} expected, got ${raw.length}`);
}

/** A domain name, UUID or numeric id string. */
function key(v: unknown, i: number): string {
  if (typeof v !== 'string' || v === '' || v.length > 256) throw invalid(`argument ${i + 1} must be a domain name, UUID or id`);
  return v;
}

function file(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 4096) throw invalid(`${what} needs a file path`);
  return v;
}

function options(v: unknown, i: number, allowed?: readonly string[]): Obj {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`argument ${i + 1} must be an options object`);
  const o = v as Obj;
  if (allowed !== undefined) for (const k of Object.keys(o)) if (!allowed.includes(k)) throw invalid(`unknown option ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
  return o;
}

function optBool(o: Obj, k: string): { [key: string]: boolean } {
  const v = o[k];
  if (v === undefined) return {};
  if (typeof v !== 'boolean') throw invalid(`option ${k} must be a boolean`);
  return { [k]: v };
}

function optNum(o: Obj, k: string, min: number, max: number): { [key: string]: number } {
  const v = o[k];
  if (v === undefined) return {};
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw invalid(`option ${k} must be a number from ${min} to ${max}`);
  return { [k]: v };
}

function rpc(peer: string, what: string, problem: string): VirtError {
  return new VirtError('VIRT_ERR_RPC', `${peer} sent a malformed ${what} reply: ${problem}`);
}

function refReply(what: string) {
  return (raw: unknown, peer: string): DomainRef => {
    const why = refProblem(raw);
    if (why !== undefined) throw rpc(peer, what, why);
    return raw as DomainRef;
  };
}

/** Replies of operations that return nothing: whatever came is dropped. */
function none(): void {
  return undefined;
}

const noArgs = (raw: readonly unknown[]): [] => {
  arity(raw, 0);
  return [];
};
const keyArg = (raw: readonly unknown[]): [string] => {
  arity(raw, 1);
  return [key(raw[0], 0)];
};
const keyWire = (k: string, opts?: ReadOptions): Wire => ({ args: [k], signal: opts?.signal });
const writeKey = (k: string): Wire => ({ args: [k] });

export interface PingReply {
  protocol: number;
  pid: number;
  readOnly: boolean;
}

export interface StatsRequest {
  groups: StatsGroup[];
  inactive?: boolean;
  /** How long virt-qemud may take over the whole read. */
  timeoutMs?: number;
}

export interface RestoreRequest {
  domain?: string;
  define?: boolean;
}

/** The operations, in the order virsh lists them: reads first. */
export const OPERATIONS = {
  ping: op({
    write: false,
    driver: false,
    encode: (): Wire => ({ args: [] }),
    args: noArgs,
    result: (raw, peer): PingReply => {
      const r = raw as Obj | null;
      if (typeof raw !== 'object' || r === null || typeof r['protocol'] !== 'number' || typeof r['pid'] !== 'number' || typeof r['readOnly'] !== 'boolean') throw rpc(peer, 'ping', 'expected {protocol, pid, readOnly}');
      return { protocol: r['protocol'], pid: r['pid'], readOnly: r['readOnly'] };
    },
  }),
  version: op({
    write: false,
    driver: true,
    encode: (opts?: ReadOptions): Wire => ({ args: [], signal: opts?.signal }),
    args: noArgs,
    result: (raw, peer): string => {
      if (typeof raw !== 'string' || raw.length > 256) throw rpc(peer, 'version', 'expected a short string');
      return raw;
    },
  }),
  hostInfo: op({
    write: false,
    driver: true,
    encode: (opts?: ReadOptions): Wire => ({ args: [], signal: opts?.signal }),
    args: noArgs,
    result: (raw, peer): HostInfo => {
      const why = hostInfoProblem(raw);
      if (why !== undefined) throw rpc(peer, 'hostInfo', why);
      return raw as HostInfo;
    },
  }),
  listDomains: op({
    write: false,
    driver: true,
    encode: (opts?: ListOptions): Wire => ({
      args: [{ ...(opts?.active !== undefined ? { active: opts.active } : {}), ...(opts?.inactive !== undefined ? { inactive: opts.inactive } : {}) }],
      signal: opts?.signal,
    }),
    args: (raw): [{ active?: boolean; inactive?: boolean }] => {
      arity(raw, 1);
      const o = options(raw[0], 0);
      return [{ ...optBool(o, 'active'), ...optBool(o, 'inactive') }];
    },
    result: (raw, peer): DomainRef[] => {
      if (!Array.isArray(raw)) throw rpc(peer, 'listDomains', 'expected a list');
      raw.forEach((r: unknown, i) => {
        const why = refProblem(r);
        if (why !== undefined) throw rpc(peer, 'listDomains', `entry ${i}: ${why}`);
      });
      return raw as DomainRef[];
    },
    admin: { action: 'list', role: 'viewer', route: 'collection' },
  }),
  lookupDomain: op({ write: false, driver: true, encode: keyWire, args: keyArg, result: refReply('lookupDomain') }),
  domainInfo: op({
    write: false,
    driver: true,
    encode: keyWire,
    args: keyArg,
    result: (raw, peer): DomainInfo => {
      const why = domainInfoProblem(raw);
      if (why !== undefined) throw rpc(peer, 'domainInfo', why);
      return raw as DomainInfo;
    },
    admin: { action: 'get', role: 'viewer', route: 'domain' },
  }),
  /** All domains' stats in one round trip: the collectors' path. */
  allDomainStats: op({
    write: false,
    driver: true,
    encode: (opts: BulkReadOptions): Wire => ({ args: [{ groups: [...opts.groups], inactive: opts.inactive ?? false }], signal: opts.signal }),
    args: (raw): [StatsRequest] => {
      arity(raw, 1);
      const o = options(raw[0], 0);
      const groups = o['groups'] ?? [...STATS_GROUPS];
      if (!Array.isArray(groups) || groups.some((g) => !(STATS_GROUPS as readonly unknown[]).includes(g))) throw invalid(`groups must be a list of ${STATS_GROUPS.join(', ')}`);
      return [{ groups: groups as StatsGroup[], ...optBool(o, 'inactive'), ...optNum(o, 'timeoutMs', 1, 3_600_000) }];
    },
    // Never throws: a malformed entry costs its domain (a VIRT_ERR_RPC entry in errors), not the reading.
    result: (raw, peer): BulkStats => checkBulkStats(raw, peer),
  }),
  /** Domain definition as the driver stores it (a JSON object). */
  domainDefinition: op({
    write: false,
    driver: true,
    encode: keyWire,
    args: keyArg,
    result: (raw, peer): unknown => {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw rpc(peer, 'domainDefinition', 'expected an object');
      return raw;
    },
  }),

  define: op({
    write: true,
    driver: true,
    encode: (definition: unknown): Wire => ({ args: [definition] }),
    // The definition itself is checked by whoever stores it (VIRT_ERR_INVALID_ARG naming the field).
    args: (raw): [unknown] => {
      arity(raw, 1);
      if (raw[0] === undefined) throw invalid('define needs a definition');
      return [raw[0]];
    },
    result: refReply('define'),
    admin: { action: 'define', role: 'admin', route: 'collection' },
  }),
  undefine: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'undefine', role: 'admin', route: 'domain' } }),
  start: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'start', role: 'operator', route: 'action' } }),
  shutdown: op({
    write: true,
    driver: true,
    encode: (k: string, opts?: ShutdownOptions): Wire => ({ args: [k, { force: opts?.force ?? false }] }),
    args: (raw): [string, { force?: boolean; graceSeconds?: number }] => {
      arity(raw, 2);
      const o = options(raw[1], 1);
      return [key(raw[0], 0), { ...optBool(o, 'force'), ...optNum(o, 'graceSeconds', 0, 86400) }];
    },
    result: none,
    admin: { action: 'shutdown', role: 'operator', route: 'action' },
  }),
  reboot: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'reboot', role: 'operator', route: 'action' } }),
  destroy: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'destroy', role: 'admin', route: 'action' } }),
  suspend: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'suspend', role: 'operator', route: 'action' } }),
  resume: op({ write: true, driver: true, encode: writeKey, args: keyArg, result: none, admin: { action: 'resume', role: 'operator', route: 'action' } }),
  save: op({
    write: true,
    driver: true,
    encode: (k: string, f: string): Wire => ({ args: [k, f] }),
    args: (raw): [string, string] => {
      arity(raw, 2);
      return [key(raw[0], 0), file(raw[1], 'save')];
    },
    result: none,
    admin: { action: 'save', role: 'operator', route: 'action' },
  }),
  restore: op({
    write: true,
    driver: true,
    encode: (f: string, opts?: RestoreOptions): Wire => ({ args: opts === undefined ? [f] : [f, opts] }),
    args: (raw): [string, RestoreRequest] => {
      arity(raw, 2);
      const o = options(raw[1], 1, ['domain', 'define']);
      return [file(raw[0], 'restore'), { ...(o['domain'] === undefined ? {} : { domain: key(o['domain'], 1) }), ...optBool(o, 'define') }];
    },
    result: refReply('restore'),
    admin: { action: 'restore', role: 'operator', route: 'action' },
  }),
  /** Drops a domain's managed-save image (virsh managedsave-remove); virt-qemud only. */
  managedSaveRemove: op({ write: true, driver: false, encode: writeKey, args: keyArg, result: none }),
} as const;

type Table = typeof OPERATIONS;
export type OpName = keyof Table;
/** The wire arguments of an operation, as its argument check returns them. */
export type OpArgs<K extends OpName> = ReturnType<Table[K]['args']>;
export type OpResult<K extends OpName> = ReturnType<Table[K]['result']>;

/** Operations every driver may implement (the table's driver entries). */
export type DriverOpName = { [K in OpName]: Table[K]['driver'] extends true ? K : never }[OpName];

/** A driver's implementation of one operation. */
export type DriverFn<K extends OpName> = (...args: Parameters<Table[K]['encode']>) => Promise<OpResult<K>>;

export const OP_NAMES = Object.keys(OPERATIONS) as OpName[];

/** The table entry of an operation name from the wire; undefined for anything else (prototype keys included). */
export function operation(name: string): Table[OpName] | undefined {
  return Object.hasOwn(OPERATIONS, name) ? OPERATIONS[name as OpName] : undefined;
}

export function isWrite(name: string): boolean {
  return operation(name)?.write === true;
}

/** How a client stub reaches the other side: one call per operation, the reply unchecked. */
export type Caller = (op: OpName, wire: Wire, write: boolean) => Promise<unknown>;

/**
 * Client stubs for the driver operations: each encodes its arguments as the
 * table says, calls, and checks the reply with the table's result check.
 * `overrides` replace an entry's encoding (e.g. a deadline only the driver knows).
 */
export function clientStubs(call: Caller, peer: string, overrides: { [K in DriverOpName]?: (...args: Parameters<Table[K]['encode']>) => Wire } = {}): { [K in DriverOpName]: DriverFn<K> } {
  const out: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const name of OP_NAMES) {
    const spec = OPERATIONS[name];
    if (!spec.driver) continue;
    const encode = (overrides[name as DriverOpName] ?? spec.encode) as (...args: unknown[]) => Wire;
    const check: (raw: unknown, peer: string) => unknown = spec.result;
    out[name] = async (...args: never[]) => check(await call(name, encode(...args), spec.write), peer);
  }
  return out as { [K in DriverOpName]: DriverFn<K> };
}

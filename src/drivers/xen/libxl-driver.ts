/**
 * The libxl sub-driver: the write path of Xen >= 4.5 (where Xend is gone),
 * through the xl toolstack, in the slot libvirt's own libxl driver fills.
 *  - define/undefine keep xl configurations in the driver's configuration
 *    store (xen.libxl-config-dir): xl itself keeps no inactive domains, as
 *    libvirt's libxl driver keeps its own; those are the shut-off managed
 *    domains the bulk read reports (read from the store, no xl run);
 *  - start is `xl create /dev/null <configuration>` (the configuration goes
 *    as xl's key=value arguments, so it works on a remote xl channel too);
 *  - shutdown/reboot/destroy/pause/unpause/save/restore are the xl commands
 *    of the same names, checked against the domain's state first (a
 *    wrong-state operation is VIRT_ERR_OPERATION_INVALID and runs nothing).
 * Reads never run a state-changing xl command.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open as openFile, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { VirtError, isVirtError } from '../../virt/errors.ts';
import type { BulkReadOptions, BulkStats, DomainInfo, DomainRef, DomainState, DomainStats, RestoreOptions, ShutdownOptions } from '../types.ts';
import { definitionToConfig } from './xend-config.ts';
import type { Reconnecting } from './reconnecting.ts';
import { checkState, type LifecycleOp } from './state-rules.ts';
import { matchesKey, type XenSubDriver } from './subdriver.ts';
import type { XlResult, XlRunner } from './xl.ts';

const DRIVER = 'xen/libxl';
const MIB = 1024 * 1024;
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One defined domain in the configuration store. */
export interface XlDefinition {
  name: string;
  uuid: string;
  memoryMiB: number;
  maxMemoryMiB: number;
  vcpus: number;
  osType: string;
  /** The xl configuration text `start` passes to xl create. */
  config: string;
}

/** Running domain as the rest of the driver sees it (hypervisor + XenStore). */
export type ActiveLookup = (key: string) => Promise<{ name: string; uuid: string; id: number | null; state: DomainState } | undefined>;

function bad(why: string): never {
  throw new VirtError('VIRT_ERR_XML_ERROR', `invalid Xen domain definition: ${why}`, { driver: DRIVER });
}

const q = (s: string): string => {
  if (/["\\\n]/.test(s)) bad(`value ${JSON.stringify(s.slice(0, 60))} may not contain quotes, backslashes or newlines`);
  return `"${s}"`;
};

/** Reads `key = value` settings of an xl configuration (one per line; lists on one line). */
export function parseXlConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$/.exec(line);
    if (m === null) bad(`xl configuration line ${JSON.stringify(line.slice(0, 80))} is not key = value on one line`);
    out.set(m[1] as string, (m[2] as string).trim());
  }
  return out;
}

const unquote = (v: string | undefined): string | undefined => (v === undefined ? undefined : v.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1'));

/**
 * A definition: xl configuration text passed through (as a string or as
 * { xl: text }; it must name the domain; a uuid is added when missing), or the JSON shape docs/xen.md
 * documents (validated as for Xend), turned into xl configuration.
 */
export function definitionToXl(definition: unknown): XlDefinition {
  // { "xl": TEXT } is how the admin API and virtctl carry xl configuration text (a JSON body, a file).
  if (typeof definition === 'object' && definition !== null && 'xl' in definition) {
    const { xl: text, ...rest } = definition;
    if (typeof text !== 'string' || Object.keys(rest).length > 0) bad('an xl definition is { "xl": "<configuration text>" } and nothing else');
    return definitionToXl(text);
  }
  if (typeof definition === 'string') {
    if (definition.length > 64 * 1024) bad('xl configuration above 64 KiB');
    const kv = parseXlConfig(definition);
    const name = unquote(kv.get('name'));
    if (name === undefined || !NAME_RE.test(name)) bad(`xl configuration needs name = "NAME" (letters, digits, _ . -), got ${JSON.stringify(name)}`);
    let uuid = unquote(kv.get('uuid'))?.toLowerCase();
    let config = definition.trim();
    if (uuid === undefined) {
      uuid = randomUUID();
      config += `\nuuid = "${uuid}"`;
    }
    if (!UUID_RE.test(uuid)) bad(`uuid ${JSON.stringify(uuid)} is not a UUID`);
    const num = (k: string, def: number): number => {
      const v = kv.get(k);
      const n = v === undefined ? def : Number(v);
      if (!Number.isInteger(n) || n <= 0) bad(`${k} = ${String(v)} is not a positive integer`);
      return n;
    };
    const memoryMiB = num('memory', 128);
    return { name, uuid, memoryMiB, maxMemoryMiB: num('maxmem', memoryMiB), vcpus: num('vcpus', 1), osType: unquote(kv.get('type')) === 'hvm' ? 'hvm' : 'linux', config: config + '\n' };
  }
  // Same validation (and error messages) as the Xend path.
  definitionToConfig(definition);
  const o = definition as { name: string; uuid?: string; memoryMiB: number; maxMemoryMiB?: number; vcpus: number; maxVcpus?: number; osType?: string; kernel?: string; ramdisk?: string; cmdline?: string; disks?: Array<{ target: string; path: string; readonly?: boolean }>; nics?: Array<{ mac?: string; bridge?: string }> };
  const uuid = (o.uuid ?? randomUUID()).toLowerCase();
  const lines = [`name = ${q(o.name)}`, `uuid = ${q(uuid)}`, `type = ${q(o.osType === 'hvm' ? 'hvm' : 'pv')}`, `memory = ${o.memoryMiB}`, `maxmem = ${o.maxMemoryMiB ?? o.memoryMiB}`, `vcpus = ${o.vcpus}`];
  if (o.maxVcpus !== undefined) lines.push(`maxvcpus = ${o.maxVcpus}`);
  if (o.kernel !== undefined) lines.push(`kernel = ${q(o.kernel)}`);
  if (o.ramdisk !== undefined) lines.push(`ramdisk = ${q(o.ramdisk)}`);
  if (o.cmdline !== undefined) lines.push(`extra = ${q(o.cmdline)}`);
  if (o.disks !== undefined && o.disks.length > 0) {
    lines.push(`disk = [ ${o.disks.map((d) => q(`format=raw, vdev=${d.target}, access=${d.readonly === true ? 'ro' : 'rw'}, target=${d.path}`)).join(', ')} ]`);
  }
  if (o.nics !== undefined && o.nics.length > 0) {
    lines.push(`vif = [ ${o.nics.map((n) => q([n.mac !== undefined ? `mac=${n.mac}` : '', n.bridge !== undefined ? `bridge=${n.bridge}` : ''].filter((x) => x !== '').join(','))).join(', ')} ]`);
  }
  lines.push('on_poweroff = "destroy"', 'on_reboot = "restart"', 'on_crash = "destroy"');
  return { name: o.name, uuid, memoryMiB: o.memoryMiB, maxMemoryMiB: o.maxMemoryMiB ?? o.memoryMiB, vcpus: o.vcpus, osType: o.osType === 'hvm' ? 'hvm' : 'linux', config: lines.join('\n') + '\n' };
}

/** The configuration store: one JSON file per defined domain. */
export class XlConfigStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async list(): Promise<XlDefinition[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot read the libxl configuration store ${this.dir}: ${(err as Error).message}`, { driver: DRIVER });
    }
    const out: XlDefinition[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
      try {
        out.push(JSON.parse(await readFile(path.join(this.dir, n), 'utf8')) as XlDefinition);
      } catch {
        // A file being replaced or damaged: not a definition.
      }
    }
    return out;
  }

  async find(key: string): Promise<XlDefinition | undefined> {
    return (await this.list()).find((d) => d.name === key || d.uuid === key.toLowerCase());
  }

  async put(d: XlDefinition): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.dir, `.${d.name}.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(d, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, path.join(this.dir, `${d.name}.json`));
  }

  async remove(name: string): Promise<void> {
    await rm(path.join(this.dir, `${name}.json`), { force: true });
  }
}

/** Which domain an xl save image is of, from its header. */
export interface XlSaveIdentity {
  name: string;
  uuid: string;
}

const XL_SAVE_MAGIC = Buffer.from('Xen saved domain, xl format\n \0 \r', 'latin1');
const XL_FLAG_JSON = 1 << 1;
const XL_MAX_HEADER_CONFIG = 1024 * 1024;

/**
 * Reads the header xl save writes before the domain's memory (tools/xl's
 * save_file_header: 32-byte magic, u32 byte order 0x01020304, mandatory and
 * optional flags, optional data length, in the saving host's byte order;
 * then the optional data: u32 length + the libxl JSON configuration).
 */
export function parseXlSaveHeader(buf: Buffer, file: string): XlSaveIdentity {
  const bad = (why: string): never => {
    throw new VirtError('VIRT_ERR_SAVE_INVALID', `${file} is not an xl save image: ${why}`, { driver: DRIVER });
  };
  if (buf.length < 48 || !buf.subarray(0, 32).equals(XL_SAVE_MAGIC)) bad('no xl save magic');
  const le = buf.readUInt32LE(32) === 0x01020304;
  if (!le && buf.readUInt32BE(32) !== 0x01020304) bad('unknown byte order mark');
  const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const mandatory = u32(36);
  const optLen = u32(44);
  if ((mandatory & XL_FLAG_JSON) === 0) bad('its configuration is not in JSON (saved by an old xl)');
  if (optLen < 4 || optLen > XL_MAX_HEADER_CONFIG || buf.length < 48 + optLen) bad(`optional data of ${optLen} bytes does not fit`);
  const cfgLen = u32(48);
  if (cfgLen > optLen - 4) bad(`configuration of ${cfgLen} bytes overruns the header`);
  let cfg: { c_info?: { name?: unknown; uuid?: unknown } };
  try {
    cfg = JSON.parse(buf.subarray(52, 52 + cfgLen).toString('utf8').replace(/\0+$/, '')) as typeof cfg;
  } catch {
    return bad('its configuration is not JSON');
  }
  const name = cfg.c_info?.name;
  const uuid = cfg.c_info?.uuid;
  if (typeof name !== 'string' || !NAME_RE.test(name)) return bad('its configuration names no domain');
  if (typeof uuid !== 'string' || !UUID_RE.test(uuid.toLowerCase())) return bad(`its configuration has no UUID for ${name}`);
  return { name, uuid: uuid.toLowerCase() };
}

async function readXlSaveIdentity(file: string): Promise<XlSaveIdentity> {
  let fh;
  try {
    fh = await openFile(file, 'r');
  } catch (err) {
    throw new VirtError('VIRT_ERR_SAVE_INVALID', `cannot read the save image ${file} to check which domain it is of: ${(err as Error).message}`, { driver: DRIVER, cause: err });
  }
  try {
    const head = Buffer.alloc(48);
    const { bytesRead } = await fh.read(head, 0, 48, 0);
    if (bytesRead < 48) return parseXlSaveHeader(head.subarray(0, bytesRead), file);
    const optLen = head.readUInt32LE(32) === 0x01020304 ? head.readUInt32LE(44) : head.readUInt32BE(44);
    const all = Buffer.alloc(48 + Math.min(optLen, XL_MAX_HEADER_CONFIG));
    const r = await fh.read(all, 0, all.length, 0);
    return parseXlSaveHeader(all.subarray(0, r.bytesRead), file);
  } finally {
    await fh.close();
  }
}

function inactiveInfo(d: XlDefinition): DomainInfo {
  return { name: d.name, uuid: d.uuid, id: null, state: 'shutoff', maxMemoryBytes: d.maxMemoryMiB * MIB, memoryBytes: 0, vcpus: d.vcpus, cpuTimeSeconds: 0, osType: d.osType };
}

export interface LibxlSubDriverOptions {
  conn: Reconnecting<XlRunner>;
  store: XlConfigStore;
  writable: boolean;
  /** Running domains (the hypervisor's reading with XenStore's names). */
  active: ActiveLookup;
  /** Names of running domains, for telling defined-and-running from shut off. */
  activeNames: () => Promise<Set<string>>;
  graceMs: number;
  opTimeoutMs: number;
}

export function createLibxlSubDriver(opts: LibxlSubDriverOptions): XenSubDriver {
  const { conn, store } = opts;

  const xl = async (args: string[], timeoutMs?: number): Promise<XlResult> => {
    const r = await (await conn.get()).run(args, { timeoutMs });
    if (r.code !== 0) {
      // The first error libxl printed says why; the last lines say where it ended.
      const lines = (r.stderr.trim() || r.stdout.trim()).split('\n');
      const first = lines.find((l) => /error|fail|invalid/i.test(l));
      const msg = [...new Set([first, ...lines.slice(-2)].filter((l): l is string => l !== undefined))].join(' ').slice(0, 600);
      const code = /not found|invalid domain identifier|no such domain/i.test(msg) ? 'VIRT_ERR_NO_DOMAIN' : 'VIRT_ERR_OPERATION_FAILED';
      throw new VirtError(code, `xl ${args[0] ?? ''} failed (exit ${r.code}): ${msg}`, { driver: DRIVER });
    }
    return r;
  };

  const inactive = async (): Promise<XlDefinition[]> => {
    const [defs, running] = await Promise.all([store.list(), opts.activeNames()]);
    return defs.filter((d) => !running.has(d.name));
  };

  const findInactive = async (key: string): Promise<XlDefinition> => {
    const d = (await inactive()).find((x) => matchesKey(key, { name: x.name, uuid: x.uuid, id: null }));
    if (d === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no shut-off domain ${JSON.stringify(key)} in the libxl configuration store`, { driver: DRIVER, domain: key });
    return d;
  };

  const inactiveDomainStats = async (): Promise<BulkStats> => ({
    domains: (await inactive()).map((d): DomainStats => {
      const info = inactiveInfo(d);
      return { info, memory: { maximumBytes: info.maxMemoryBytes, currentBytes: 0 } };
    }),
    errors: [],
  });

  const sub: XenSubDriver = {
    name: DRIVER,
    slot: 'libxl',
    canWrite: opts.writable,
    knowsInactive: true,
    inactiveDomainStats,
    listDomains: async (o) => {
      if (o?.inactive !== true) return [];
      return (await inactive()).map((d) => ({ name: d.name, uuid: d.uuid, id: null }));
    },
    lookupDomain: async (key) => {
      const d = await findInactive(key);
      return { name: d.name, uuid: d.uuid, id: null };
    },
    domainInfo: async (key) => inactiveInfo(await findInactive(key)),
    domainDefinition: async (key) => {
      const d = await store.find(key);
      if (d === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain ${JSON.stringify(key)} in the libxl configuration store`, { driver: DRIVER, domain: key });
      return { format: 'xl', config: d.config };
    },
    allDomainStats: async (o: BulkReadOptions) => (o.inactive === true ? inactiveDomainStats() : { domains: [], errors: [] }),
    close: () => conn.close(),
  };
  if (!opts.writable) return sub;

  /** The domain as it is now: running (hypervisor) or defined and shut off (store). */
  const current = async (key: string): Promise<{ name: string; uuid: string; id: number | null; state: DomainState; def?: XlDefinition }> => {
    const a = await opts.active(key);
    if (a !== undefined) return { ...a, def: await store.find(a.name) };
    const def = await store.find(key);
    if (def === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain ${JSON.stringify(key)}`, { driver: DRIVER, domain: key });
    return { name: def.name, uuid: def.uuid, id: null, state: 'shutoff', def };
  };

  const guarded = async (op: LifecycleOp, key: string, run: (d: Awaited<ReturnType<typeof current>>) => Promise<void>): Promise<void> => {
    const d = await current(key);
    checkState(op, d, DRIVER);
    await run(d);
  };

  const waitGone = async (name: string, ms: number): Promise<boolean> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const a = await opts.active(name);
      if (a === undefined || a.state === 'shutoff') return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  };

  const absolute = (file: string, what: string): string => {
    if (!file.startsWith('/') || file.includes('\0') || file.includes('\n')) throw new VirtError('VIRT_ERR_INVALID_ARG', `${what} file must be an absolute path, got ${JSON.stringify(file)}`, { driver: DRIVER });
    return file;
  };

  Object.assign(sub, {
    define: async (definition: unknown): Promise<DomainRef> => {
      const d = definitionToXl(definition);
      const existing = await store.find(d.name);
      if (existing !== undefined && existing.uuid !== d.uuid && (typeof definition !== 'string' ? (definition as { uuid?: string }).uuid !== undefined : parseXlConfig(definition).has('uuid'))) {
        throw new VirtError('VIRT_ERR_DOM_EXIST', `domain ${d.name} is already defined with UUID ${existing.uuid}`, { driver: DRIVER, domain: d.name });
      }
      // A redefinition keeps the domain's UUID.
      const def = existing !== undefined ? { ...d, uuid: existing.uuid, config: d.config.replace(/^uuid\s*=.*$/m, `uuid = "${existing.uuid}"`) } : d;
      await store.put(def);
      const a = await opts.active(def.name);
      return { name: def.name, uuid: def.uuid, id: a?.id ?? null };
    },
    undefine: (key: string) =>
      guarded('undefine', key, async (d) => {
        if (d.def === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `domain ${d.name} is not defined in the libxl configuration store`, { driver: DRIVER, domain: d.name });
        await store.remove(d.name);
      }),
    start: (key: string) =>
      guarded('start', key, async (d) => {
        if (d.def === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `domain ${d.name} is not defined`, { driver: DRIVER, domain: d.name });
        await xl(['create', '/dev/null', d.def.config], opts.opTimeoutMs);
      }),
    shutdown: (key: string, so?: ShutdownOptions) =>
      guarded(so?.force === true ? 'destroy' : 'shutdown', key, async (d) => {
        await xl(['shutdown', d.name]).catch((err: unknown) => {
          if (!(so?.force === true && isVirtError(err, 'VIRT_ERR_OPERATION_FAILED'))) throw err;
        });
        if (so?.force === true && !(await waitGone(d.name, opts.graceMs))) await xl(['destroy', d.name]);
      }),
    reboot: (key: string) => guarded('reboot', key, async (d) => void (await xl(['reboot', d.name]))),
    destroy: (key: string) => guarded('destroy', key, async (d) => void (await xl(['destroy', d.name]))),
    suspend: (key: string) => guarded('suspend', key, async (d) => void (await xl(['pause', d.name]))),
    resume: (key: string) => guarded('resume', key, async (d) => void (await xl(['unpause', d.name]))),
    save: (key: string, file: string) => guarded('save', key, async (d) => void (await xl(['save', d.name, absolute(file, 'save')], opts.opTimeoutMs))),
    restore: async (file: string, ro?: RestoreOptions): Promise<DomainRef> => {
      absolute(file, 'restore');
      // The caller names the domain it means (the admin API does): the image must be of it, and
      // unless re-creating is allowed, that domain must be defined now, with the same UUID.
      let image: XlSaveIdentity | undefined;
      if (ro?.domain !== undefined) {
        image = await readXlSaveIdentity(file);
        if (!matchesKey(ro.domain, { name: image.name, uuid: image.uuid, id: null })) {
          throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${image.name} (${image.uuid}), not ${ro.domain}`, { driver: DRIVER, domain: ro.domain });
        }
        const def = await store.find(image.name);
        if (def === undefined && ro.define !== true) throw new VirtError('VIRT_ERR_NO_DOMAIN', `domain ${image.name} is not defined; re-creating it from ${file} needs define`, { driver: DRIVER, domain: image.name });
        if (def !== undefined && def.uuid !== image.uuid) {
          throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} has UUID ${image.uuid}, the defined domain ${def.name} ${def.uuid}`, { driver: DRIVER, domain: def.name });
        }
        const a = await opts.active(image.name);
        if (a !== undefined && a.state !== 'shutoff') throw new VirtError('VIRT_ERR_OPERATION_INVALID', `cannot restore domain ${image.name}: it is already active (state ${a.state})`, { driver: DRIVER, domain: image.name });
      }
      const r = await xl(['restore', file], opts.opTimeoutMs);
      // xl prints the configuration it restores ("name": "...") in its JSON dump, when it does.
      const name = image?.name ?? /"name":\s*"([^"]+)"/.exec(r.stdout + r.stderr)?.[1];
      const list = JSON.parse((await xl(['list', '-l'])).stdout || '[]') as Array<{ domid: number; config?: { c_info?: { name?: string; uuid?: string } } }>;
      const newest = list.filter((x) => x.domid !== 0 && (name === undefined || x.config?.c_info?.name === name)).sort((a, b) => b.domid - a.domid)[0];
      if (newest?.config?.c_info?.name === undefined) throw new VirtError('VIRT_ERR_RPC', `xl restored ${file} but no domain shows up`, { driver: DRIVER });
      return { name: newest.config.c_info.name, uuid: newest.config.c_info.uuid ?? image?.uuid ?? '', id: newest.domid };
    },
  });
  return sub;
}

/**
 * The XenStore sub-driver: names, UUIDs (through the vm path), devices
 * (vbd/vif backends) and memory targets of running domains; shutdown and
 * reboot by writing control/shutdown when the connection may write.
 */
import { VirtError } from '../../virt/errors.ts';
import type { DomainRef, ListOptions, ReadOptions } from '../types.ts';
import { canonicalUuid } from './xend-domain.ts';
import { isXsErrno, type XenStoreClient } from './xenstore.ts';
import { matchesKey, type XenSubDriver } from './subdriver.ts';
import type { Reconnecting } from './reconnecting.ts';

const DRIVER = 'xen/xenstore';

export interface XsIdentity {
  domid: number;
  name: string;
  uuid: string | undefined;
  memoryTargetBytes: number | undefined;
  vcpusOnline: number | undefined;
  /** vbd devid -> disk name (xvda), from the backend's dev node. */
  vbdNames: Map<number, string>;
  /** vbd devid -> backing path (the backend's params). */
  vbdPaths: Map<number, string>;
  /** vif devid -> MAC. */
  vifMacs: Map<number, string>;
}

async function readIdentity(client: XenStoreClient, domid: number, tx: number, signal?: AbortSignal): Promise<XsIdentity | undefined> {
  const base = `/local/domain/${domid}`;
  const o = { tx, signal };
  const name = await client.readOptional(`${base}/name`, o);
  if (name === undefined) return undefined;
  const vm = await client.readOptional(`${base}/vm`, o);
  let uuid: string | undefined;
  if (vm !== undefined) uuid = canonicalUuid((await client.readOptional(`${vm}/uuid`, o)) ?? vm.replace(/^\/vm\//, ''));
  const target = await client.readOptional(`${base}/memory/target`, o);
  const kib = target === undefined ? NaN : Number(target);
  const cpus = await client.directory(`${base}/cpu`, o).catch(() => undefined);
  let vcpusOnline: number | undefined;
  if (cpus !== undefined) {
    vcpusOnline = 0;
    for (const c of cpus) if ((await client.readOptional(`${base}/cpu/${c}/availability`, o)) !== 'offline') vcpusOnline++;
  }
  const vbdNames = new Map<number, string>();
  const vbdPaths = new Map<number, string>();
  const vifMacs = new Map<number, string>();
  const devDir = async (kind: string): Promise<string[]> => {
    try {
      return await client.directory(`${base}/device/${kind}`, o);
    } catch (err) {
      if (isXsErrno(err, 'ENOENT')) return [];
      throw err;
    }
  };
  for (const devid of await devDir('vbd')) {
    const backend = await client.readOptional(`${base}/device/vbd/${devid}/backend`, o);
    const dev = backend === undefined ? undefined : await client.readOptional(`${backend}/dev`, o);
    if (dev !== undefined && /^\d+$/.test(devid)) vbdNames.set(Number(devid), dev.replace(/:(disk|cdrom)$/, ''));
    const params = backend === undefined ? undefined : await client.readOptional(`${backend}/params`, o);
    if (params !== undefined && params !== '' && /^\d+$/.test(devid)) vbdPaths.set(Number(devid), params);
  }
  for (const devid of await devDir('vif')) {
    const mac = await client.readOptional(`${base}/device/vif/${devid}/mac`, o);
    if (mac !== undefined && /^\d+$/.test(devid)) vifMacs.set(Number(devid), mac);
  }
  return { domid, name, uuid, memoryTargetBytes: Number.isFinite(kib) ? kib * 1024 : undefined, vcpusOnline, vbdNames, vbdPaths, vifMacs };
}

export interface XenStoreSubDriver extends XenSubDriver {
  /** Identities of the given (or all) running domains, read in one transaction. */
  identities(domids: number[] | undefined, opts?: ReadOptions): Promise<Map<number, XsIdentity>>;
  /** Names of the running domains only (two requests a domain fewer than ten): which defined ones are active. */
  names(opts?: ReadOptions): Promise<Set<string>>;
}

export function createXenStoreSubDriver(conn: Reconnecting<XenStoreClient>, readOnly: boolean): XenStoreSubDriver {
  const identities = async (domids: number[] | undefined, opts: ReadOptions = {}): Promise<Map<number, XsIdentity>> => {
    const client = await conn.get();
    return client.transaction(async (tx) => {
      const ids = domids ?? (await client.directory('/local/domain', { tx, signal: opts.signal })).filter((x) => /^\d+$/.test(x)).map(Number);
      // Requests are pipelined across domains (replies matched on req_id).
      const found = await Promise.all(ids.map((id) => readIdentity(client, id, tx, opts.signal)));
      const out = new Map<number, XsIdentity>();
      for (const ident of found) if (ident !== undefined) out.set(ident.domid, ident);
      return out;
    }, { signal: opts.signal });
  };

  const names = async (opts: ReadOptions = {}): Promise<Set<string>> => {
    const client = await conn.get();
    return client.transaction(async (tx) => {
      const ids = (await client.directory('/local/domain', { tx, signal: opts.signal })).filter((x) => /^\d+$/.test(x));
      const found = await Promise.all(ids.map((id) => client.readOptional(`/local/domain/${id}/name`, { tx, signal: opts.signal })));
      return new Set(found.filter((n): n is string => n !== undefined));
    }, { signal: opts.signal });
  };

  const refs = async (opts?: ReadOptions): Promise<Array<DomainRef & { ident: XsIdentity }>> => {
    const all = await identities(undefined, opts);
    return [...all.values()].map((i) => ({ name: i.name, uuid: i.uuid ?? '', id: i.domid, ident: i }));
  };

  const find = async (key: string, opts?: ReadOptions): Promise<DomainRef & { ident: XsIdentity }> => {
    const hit = (await refs(opts)).find((r) => matchesKey(key, r));
    if (hit === undefined) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no running domain ${JSON.stringify(key)} in XenStore`, { driver: DRIVER, domain: key });
    return hit;
  };

  const requestShutdown = async (key: string, reason: 'poweroff' | 'reboot'): Promise<void> => {
    const d = await find(key);
    if (d.id === 0) throw new VirtError('VIRT_ERR_OPERATION_INVALID', 'Domain-0 cannot be shut down through XenStore', { driver: DRIVER, domain: key });
    await (await conn.get()).write(`/local/domain/${d.id}/control/shutdown`, reason);
  };

  const sub: XenStoreSubDriver = {
    name: DRIVER,
    slot: 'xenstore',
    canWrite: !readOnly,
    knowsInactive: false,
    identities,
    names,
    listDomains: async (opts?: ListOptions) => {
      if (opts?.active === false) return [];
      return (await refs(opts)).map(({ name, uuid, id }) => ({ name, uuid, id }));
    },
    lookupDomain: async (key, opts) => {
      const { name, uuid, id } = await find(key, opts);
      return { name, uuid, id };
    },
    // No domainInfo: XenStore has no state, CPU time or maximum memory, and a
    // reading with those left at nostate/0 would pass for a real one. Without
    // the hypervisor and Xend, domainInfo fails and says which backend is missing.
    close: () => conn.close(),
  };
  if (!readOnly) {
    sub.shutdown = (key) => requestShutdown(key, 'poweroff');
    sub.reboot = (key) => requestShutdown(key, 'reboot');
  }
  return sub;
}

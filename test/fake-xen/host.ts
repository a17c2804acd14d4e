/**
 * The fake Xen host: one in-memory set of domains behind the XenStore
 * stand-in, the Xend stand-in and the state files the stub libxenctrl and
 * virt-proxy read. Every change rewrites XenStore entries and the state
 * files, so a Xend shutdown is seen by the next hypercall read. Counters
 * advance with (fake or real) time and never decrease.
 */
import { stateFileText, type StateDomain, type StateHost } from './state-file.ts';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { XsTree, type XsTreeView } from './xenstore-tree.ts';

export type FakeStatus = 'running' | 'blocked' | 'paused' | 'shutdown' | 'crashed' | 'dying' | 'halted';

export interface FakeDisk {
  dev: string;
  devid: number;
  uname: string;
  mode: string;
  stats: { rd_req: number; wr_req: number; rd_sect: number; wr_sect: number; oo_req: number };
}

/** Guest-view counters (the host's /proc/net/dev shows them swapped). */
export interface FakeNic {
  devid: number;
  mac: string;
  bridge: string;
  rxBytes: number; rxPackets: number; rxErrors: number; rxDrops: number;
  txBytes: number; txPackets: number; txErrors: number; txDrops: number;
}

export interface FakeDomain {
  name: string;
  uuid: string;
  domid: number | null;
  managed: boolean;
  status: FakeStatus;
  /** 0 poweroff, 1 reboot, 2 suspend, 3 crash (with status shutdown). */
  shutdownReason: number;
  memoryMiB: number;
  maxmemMiB: number;
  vcpus: number;
  cpuTimeNs: number;
  startTime: number;
  osType: 'linux' | 'hvm';
  disks: FakeDisk[];
  nics: FakeNic[];
  /** How many times it rebooted (visible in Xend as reboots). */
  reboots: number;
}

export type FakeHostInfo = StateHost;

export interface DomainSpec {
  name: string;
  uuid?: string;
  memoryMiB?: number;
  maxmemMiB?: number;
  vcpus?: number;
  osType?: 'linux' | 'hvm';
  disks?: Array<{ dev: string; uname: string; mode?: string }>;
  nics?: Array<{ mac?: string; bridge?: string }>;
}

export class FakeHostError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const PAGE = 4096;
const MIB_PAGES = (1024 * 1024) / PAGE;

/** Linux xvd major 202, 16 minors per disk: xvda -> 51712. */
export function vbdDevid(dev: string): number {
  const m = /^(?:xvd|sd|hd)([a-z])$/.exec(dev);
  return m === null ? 51712 : (202 << 8) | ((m[1] as string).charCodeAt(0) - 97) * 16;
}

const FLAG = { dying: 1, hvm: 2, shutdown: 4, paused: 8, blocked: 16, running: 32 };

export function domainFlags(d: FakeDomain): number {
  let f = d.osType === 'hvm' ? FLAG.hvm : 0;
  switch (d.status) {
    case 'running': f |= FLAG.running; break;
    case 'blocked': f |= FLAG.blocked; break;
    case 'paused': f |= FLAG.paused; break;
    case 'dying': f |= FLAG.dying; break;
    case 'shutdown': f |= FLAG.shutdown | (d.shutdownReason << 16); break;
    case 'crashed': f |= FLAG.shutdown | (3 << 16); break;
    case 'halted': break;
  }
  return f;
}

export interface FakeHostOptions {
  /** Directory for the state file, sysfs tree and proc-net-dev. */
  dir: string;
  /** Advance counters by real time every N ms; 0: only by advance(). */
  autoTickMs?: number;
  now?: () => number;
}

export class FakeXenHost {
  readonly store = new XsTree();
  readonly host: FakeHostInfo = { cpus: 4, mhz: 2400, nodes: 1, sockets: 1, cores: 4, threads: 1, totalPages: 4194304, freePages: 1048576, version: '4.17.0' };
  readonly domains: FakeDomain[] = [];
  readonly dir: string;
  readonly statePath: string;
  readonly sysfsRoot: string;
  readonly procNetDev: string;
  #nextDomid = 1;
  #internal = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastTick: number;
  #writeChain: Promise<void> = Promise.resolve();
  readonly #now: () => number;
  /** Written files generation; bumped after each write lands. */
  writes = 0;

  constructor(opts: FakeHostOptions) {
    this.dir = opts.dir;
    this.statePath = join(opts.dir, 'xen-state');
    this.sysfsRoot = join(opts.dir, 'sys');
    this.procNetDev = join(opts.dir, 'proc-net-dev');
    this.#now = opts.now ?? Date.now;
    this.#lastTick = this.#now();
    this.#seed();
    // A guest acknowledges control/shutdown written by any XenStore client and acts on it.
    this.store.watches.add({ path: '/local/domain', token: 'fake-guest', fire: (p) => this.#onStoreChange(p) });
    if ((opts.autoTickMs ?? 0) > 0) {
      this.#timer = setInterval(() => {
        const now = this.#now();
        this.advance((now - this.#lastTick) / 1000);
      }, opts.autoTickMs);
      this.#timer.unref();
    }
  }

  #seed(): void {
    const dom0: FakeDomain = {
      name: 'Domain-0', uuid: '00000000-0000-0000-0000-000000000000', domid: 0, managed: false, status: 'running', shutdownReason: 0,
      memoryMiB: 1024, maxmemMiB: 1024, vcpus: 2, cpuTimeNs: 123456789, startTime: Math.floor(this.#now() / 1000) - 3600, osType: 'linux', disks: [], nics: [], reboots: 0,
    };
    this.domains.push(dom0);
    this.#activate(this.#build({ name: 'web', uuid: '5b1f3a52-8c7d-4e2a-9f61-0c1d2e3f4a5b', memoryMiB: 512, vcpus: 2, disks: [{ dev: 'xvda', uname: 'file:/srv/xen/web.img' }], nics: [{ mac: '00:16:3e:00:00:01', bridge: 'xenbr0' }] }, false), 'running');
    this.#activate(this.#build({ name: 'db', uuid: 'c0ffee00-1234-4abc-8def-0123456789ab', memoryMiB: 1024, maxmemMiB: 2048, vcpus: 1, disks: [{ dev: 'xvda', uname: 'phy:/dev/vg0/db' }, { dev: 'xvdb', uname: 'phy:/dev/vg0/dbdata' }], nics: [{ mac: '00:16:3e:00:00:02', bridge: 'xenbr0' }, { mac: '00:16:3e:00:00:03', bridge: 'xenbr1' }] }, true), 'blocked');
    this.domains.push(this.#build({ name: 'idle', uuid: '0d1e2f30-4152-4637-8899-aabbccddeeff', memoryMiB: 256, vcpus: 1, disks: [{ dev: 'xvda', uname: 'file:/srv/xen/idle.img' }] }, true));
    this.#writeDom0Store();
  }

  #build(spec: DomainSpec, managed: boolean): FakeDomain {
    return {
      name: spec.name,
      uuid: (spec.uuid ?? randomUUID()).toLowerCase(),
      domid: null,
      managed,
      status: 'halted',
      shutdownReason: 0,
      memoryMiB: spec.memoryMiB ?? 256,
      maxmemMiB: spec.maxmemMiB ?? spec.memoryMiB ?? 256,
      vcpus: spec.vcpus ?? 1,
      cpuTimeNs: 0,
      startTime: 0,
      osType: spec.osType ?? 'linux',
      disks: (spec.disks ?? []).map((d) => ({ dev: d.dev, devid: vbdDevid(d.dev), uname: d.uname, mode: d.mode ?? 'w', stats: { rd_req: 0, wr_req: 0, rd_sect: 0, wr_sect: 0, oo_req: 0 } })),
      nics: (spec.nics ?? []).map((n, i) => ({ devid: i, mac: n.mac ?? `00:16:3e:${randomHex()}:${randomHex()}:${randomHex()}`, bridge: n.bridge ?? 'xenbr0', rxBytes: 0, rxPackets: 0, rxErrors: 0, rxDrops: 0, txBytes: 0, txPackets: 0, txErrors: 0, txDrops: 0 })),
      reboots: 0,
    };
  }

  #host<T>(fn: () => T): T {
    this.#internal++;
    try {
      return fn();
    } finally {
      this.#internal--;
    }
  }

  #writeDom0Store(): void {
    this.#host(() => this.store.mutate((v) => {
      v.write('/local/domain/0/name', Buffer.from('Domain-0'));
      v.write('/local/domain/0/domid', Buffer.from('0'));
      v.write('/local/domain/0/vm', Buffer.from('/vm/00000000-0000-0000-0000-000000000000'));
      v.write('/local/domain/0/memory/target', Buffer.from(String(1024 * 1024)));
      v.write('/vm/00000000-0000-0000-0000-000000000000/uuid', Buffer.from('00000000-0000-0000-0000-000000000000'));
      v.write('/vm/00000000-0000-0000-0000-000000000000/name', Buffer.from('Domain-0'));
      v.mkdir('/tool');
    }));
  }

  #writeDomainStore(d: FakeDomain): void {
    const id = d.domid;
    if (id === null) return;
    const base = `/local/domain/${id}`;
    const w = (v: XsTreeView, p: string, s: string): void => v.write(p, Buffer.from(s));
    this.#host(() => this.store.mutate((v) => {
      w(v, `${base}/name`, d.name);
      w(v, `${base}/domid`, String(id));
      w(v, `${base}/vm`, `/vm/${d.uuid}`);
      w(v, `${base}/memory/target`, String(d.memoryMiB * 1024));
      w(v, `${base}/memory/static-max`, String(d.maxmemMiB * 1024));
      for (let i = 0; i < d.vcpus; i++) w(v, `${base}/cpu/${i}/availability`, 'online');
      w(v, `${base}/control/shutdown`, '');
      w(v, `${base}/console/tty`, `/dev/pts/${id + 10}`);
      for (const disk of d.disks) {
        const be = `/local/domain/0/backend/vbd/${id}/${disk.devid}`;
        w(v, `${base}/device/vbd/${disk.devid}/backend`, be);
        w(v, `${base}/device/vbd/${disk.devid}/state`, '4');
        w(v, `${be}/dev`, disk.dev);
        w(v, `${be}/params`, disk.uname.replace(/^[a-z:]+:/, ''));
        w(v, `${be}/type`, disk.uname.startsWith('phy:') ? 'phy' : 'file');
        w(v, `${be}/mode`, disk.mode);
        w(v, `${be}/state`, '4');
        w(v, `${be}/frontend-id`, String(id));
      }
      for (const nic of d.nics) {
        const be = `/local/domain/0/backend/vif/${id}/${nic.devid}`;
        w(v, `${base}/device/vif/${nic.devid}/backend`, be);
        w(v, `${base}/device/vif/${nic.devid}/mac`, nic.mac);
        w(v, `${base}/device/vif/${nic.devid}/state`, '4');
        w(v, `${be}/mac`, nic.mac);
        w(v, `${be}/bridge`, nic.bridge);
        w(v, `${be}/handle`, String(nic.devid));
        w(v, `${be}/state`, '4');
        w(v, `${be}/frontend-id`, String(id));
      }
      w(v, `/vm/${d.uuid}/uuid`, d.uuid);
      w(v, `/vm/${d.uuid}/name`, d.name);
      w(v, `/vm/${d.uuid}/memory`, String(d.memoryMiB));
      w(v, `/vm/${d.uuid}/maxmem`, String(d.maxmemMiB));
      w(v, `/vm/${d.uuid}/vcpus`, String(d.vcpus));
      w(v, `/vm/${d.uuid}/image/ostype`, d.osType);
    }));
    this.#host(() => this.store.fireWatches('@introduceDomain'));
  }

  #removeDomainStore(domid: number, uuid: string): void {
    this.#host(() => this.store.mutate((v) => {
      for (const p of [`/local/domain/${domid}`, `/local/domain/0/backend/vbd/${domid}`, `/local/domain/0/backend/vif/${domid}`, `/vm/${uuid}`]) {
        if (v.find(p) !== undefined) v.rm(p);
      }
    }));
    this.#host(() => this.store.fireWatches('@releaseDomain'));
  }

  #activate(d: FakeDomain, status: FakeStatus): void {
    d.domid = this.#nextDomid++;
    d.status = status;
    d.startTime = this.#now() / 1000;
    if (!this.domains.includes(d)) this.domains.push(d);
    this.#writeDomainStore(d);
  }

  /** Stops an active domain: managed ones become halted, transient ones vanish. */
  #deactivate(d: FakeDomain): void {
    if (d.domid === null) return;
    this.#removeDomainStore(d.domid, d.uuid);
    d.domid = null;
    d.status = 'halted';
    if (!d.managed) this.domains.splice(this.domains.indexOf(d), 1);
  }

  #onStoreChange(path: string): void {
    if (this.#internal > 0) return;
    const m = /^\/local\/domain\/(\d+)\/control\/shutdown$/.exec(path);
    if (m === null) return;
    const domid = Number(m[1]);
    const d = this.domains.find((x) => x.domid === domid);
    const value = this.store.live.find(path)?.value.toString() ?? '';
    if (d === undefined || value === '' || domid === 0) return;
    // The guest acknowledges (empty string) and then acts, as a PV guest does.
    setImmediate(() => {
      this.#host(() => this.store.mutate((v) => v.write(path, Buffer.alloc(0))));
      if (value === 'reboot') this.#reboot(d);
      else if (value === 'poweroff' || value === 'halt') this.#deactivate(d);
      this.changed();
    });
  }

  #reboot(d: FakeDomain): void {
    d.reboots++;
    d.startTime = this.#now() / 1000;
    d.status = 'running';
  }

  find(key: string): FakeDomain | undefined {
    const k = key.toLowerCase();
    return this.domains.find((d) => d.name === key || d.uuid === k || (d.domid !== null && String(d.domid) === key));
  }

  get(key: string): FakeDomain {
    const d = this.find(key);
    if (d === undefined) throw new FakeHostError(404, `Not found: ${key}`);
    return d;
  }

  #mustBeActive(d: FakeDomain): void {
    if (d.domid === null) throw new FakeHostError(500, `Domain ${d.name} is not running`);
  }

  #unique(spec: DomainSpec): void {
    if (this.domains.some((d) => d.name === spec.name)) throw new FakeHostError(500, `Domain '${spec.name}' already exists`);
    if (spec.uuid !== undefined && this.domains.some((d) => d.uuid === spec.uuid?.toLowerCase())) throw new FakeHostError(500, `Domain with uuid ${spec.uuid} already exists`);
  }

  // Lifecycle, as Xend carries it out. Each ends with changed().
  create(spec: DomainSpec): FakeDomain {
    this.#unique(spec);
    const d = this.#build(spec, false);
    this.#activate(d, 'paused');
    this.changed();
    return d;
  }

  define(spec: DomainSpec): FakeDomain {
    this.#unique(spec);
    const d = this.#build(spec, true);
    this.domains.push(d);
    this.changed();
    return d;
  }

  start(key: string): void {
    const d = this.get(key);
    if (d.domid !== null) throw new FakeHostError(500, `Domain ${d.name} is already running`);
    this.#activate(d, 'running');
    this.changed();
  }

  undefine(key: string): void {
    const d = this.get(key);
    if (d.domid !== null) throw new FakeHostError(500, `Domain ${d.name} is not halted`);
    this.domains.splice(this.domains.indexOf(d), 1);
    this.changed();
  }

  pause(key: string): void {
    const d = this.get(key);
    this.#mustBeActive(d);
    if (d.domid === 0) throw new FakeHostError(500, 'Cannot pause privileged domain 0');
    d.status = 'paused';
    this.changed();
  }

  unpause(key: string): void {
    const d = this.get(key);
    this.#mustBeActive(d);
    if (d.status === 'paused') d.status = 'running';
    this.changed();
  }

  /** Xend writes control/shutdown; the guest obeys at once here. */
  shutdown(key: string, reason: string): void {
    const d = this.get(key);
    this.#mustBeActive(d);
    if (d.domid === 0) throw new FakeHostError(500, 'Cannot shut down privileged domain 0');
    if (!['poweroff', 'reboot', 'halt', 'suspend'].includes(reason)) throw new FakeHostError(500, `Invalid reason: ${reason}`);
    this.#host(() => this.store.mutate((v) => v.write(`/local/domain/${d.domid}/control/shutdown`, Buffer.from(reason))));
    if (reason === 'reboot') this.#reboot(d);
    else this.#deactivate(d);
    this.changed();
  }

  destroy(key: string): void {
    const d = this.get(key);
    this.#mustBeActive(d);
    if (d.domid === 0) throw new FakeHostError(500, 'Cannot destroy privileged domain 0');
    this.#deactivate(d);
    this.changed();
  }

  async save(key: string, file: string): Promise<void> {
    const d = this.get(key);
    this.#mustBeActive(d);
    if (d.domid === 0) throw new FakeHostError(500, 'Cannot save privileged domain 0');
    if (!file.startsWith('/')) throw new FakeHostError(500, `save file must be absolute: ${file}`);
    await writeFile(file, JSON.stringify({ fakeXenSave: 1, domain: { ...d, domid: null } }));
    this.#deactivate(d);
    this.changed();
  }

  async restore(file: string, readImage: (f: string) => Promise<string>): Promise<FakeDomain> {
    let saved: unknown;
    try {
      saved = JSON.parse(await readImage(file));
    } catch (err) {
      throw new FakeHostError(500, `Cannot restore from ${file}: ${(err as Error).message}`);
    }
    const image = (saved as { domain?: FakeDomain } | null)?.domain;
    if (typeof image?.name !== 'string') throw new FakeHostError(500, `Not a saved domain image: ${file}`);
    let d = this.domains.find((x) => x.uuid === image.uuid);
    if (d !== undefined && d.domid !== null) throw new FakeHostError(500, `Domain ${d.name} is already running`);
    if (d === undefined) {
      d = { ...image, managed: false };
    } else {
      Object.assign(d, { ...image, managed: d.managed });
    }
    this.#activate(d, 'running');
    this.changed();
    return d;
  }

  setMemory(key: string, mib: number): void {
    const d = this.get(key);
    if (!Number.isInteger(mib) || mib <= 0 || mib > d.maxmemMiB) throw new FakeHostError(500, `Invalid memory target ${mib}`);
    d.memoryMiB = mib;
    if (d.domid !== null) this.#host(() => this.store.mutate((v) => v.write(`/local/domain/${d.domid}/memory/target`, Buffer.from(String(mib * 1024)))));
    this.changed();
  }

  setMaxMemory(key: string, mib: number): void {
    const d = this.get(key);
    if (!Number.isInteger(mib) || mib <= 0) throw new FakeHostError(500, `Invalid max memory ${mib}`);
    d.maxmemMiB = mib;
    this.changed();
  }

  setVcpus(key: string, n: number): void {
    const d = this.get(key);
    if (!Number.isInteger(n) || n <= 0 || n > 64) throw new FakeHostError(500, `Invalid vcpu count ${n}`);
    d.vcpus = n;
    this.changed();
  }

  /** Moves fake time forward: CPU time and device counters grow for live domains. */
  advance(seconds: number): void {
    if (seconds <= 0) return;
    this.#lastTick += seconds * 1000;
    for (const d of this.domains) {
      if (d.domid === null || d.status === 'paused' || d.status === 'shutdown' || d.status === 'crashed') continue;
      const busy = d.status === 'running' ? 0.5 : 0.05;
      d.cpuTimeNs += Math.round(seconds * d.vcpus * busy * 1e9);
      for (const k of d.disks) {
        const r = Math.round(seconds * 10);
        k.stats.rd_req += r; k.stats.rd_sect += r * 8;
        k.stats.wr_req += Math.round(seconds * 5); k.stats.wr_sect += Math.round(seconds * 5) * 16;
      }
      for (const n of d.nics) {
        const p = Math.round(seconds * 20);
        n.rxPackets += p; n.rxBytes += p * 1000;
        n.txPackets += Math.round(seconds * 7); n.txBytes += Math.round(seconds * 7) * 300;
      }
    }
    this.changed();
  }

  /**
   * Rewrites the state files (serialised, each atomically); flushed() awaits
   * it. Changes made before a pending rewrite starts share it: the files are
   * rendered when it starts, so a burst of changes (setting up 500 domains)
   * costs one rewrite, not one per change.
   */
  changed(): void {
    if (this.#writePending) return;
    this.#writePending = true;
    this.#writeChain = this.#writeChain.then(async () => {
      this.#writePending = false;
      try {
        await this.#write(this.#renderFiles());
        this.writes++;
      } catch (err) {
        this.writeError = err as Error;
      }
    });
  }

  #writePending = false;

  /** The last failure writing the state files, if any (tests assert it stays undefined). */
  writeError: Error | undefined;

  /** Resolves when every pending file write has landed. */
  flushed(): Promise<void> {
    return this.#writeChain;
  }

  #renderFiles(): { state: string; netdev: string; vbds: Map<string, Record<string, number>> } {
    const h = this.host;
    const doms: StateDomain[] = [];
    const vbds = new Map<string, Record<string, number>>();
    let netdev = 'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
    netdev += '    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0\n';
    for (const d of [...this.domains].sort((a, b) => (a.domid ?? -1) - (b.domid ?? -1))) {
      if (d.domid === null) continue;
      const pages = d.memoryMiB * MIB_PAGES;
      doms.push({ domid: d.domid, uuid: d.uuid, flags: domainFlags(d), totPages: pages, maxPages: d.maxmemMiB * MIB_PAGES, cpuTimeNs: d.cpuTimeNs, onlineVcpus: d.vcpus, maxVcpuId: d.vcpus - 1 });
      for (const k of d.disks) vbds.set(`vbd-${d.domid}-${k.devid}`, { ...k.stats });
      for (const n of d.nics) {
        // Host view: what the guest sends, the host's vif receives.
        const cols = [n.txBytes, n.txPackets, n.txErrors, n.txDrops, 0, 0, 0, 0, n.rxBytes, n.rxPackets, n.rxErrors, n.rxDrops, 0, 0, 0, 0];
        netdev += `${`vif${d.domid}.${n.devid}`.padStart(6)}: ${cols.join(' ')}\n`;
      }
    }
    return { state: stateFileText(h, doms), netdev, vbds };
  }

  async #write(s: { state: string; netdev: string; vbds: Map<string, Record<string, number>> }): Promise<void> {
    const atomic = async (path: string, text: string): Promise<void> => {
      const tmp = `${path}.tmp-${process.pid}`;
      await writeFile(tmp, text);
      await rename(tmp, path);
    };
    const devices = join(this.sysfsRoot, 'bus', 'xen-backend', 'devices');
    await mkdir(devices, { recursive: true });
    for (const [name, stats] of s.vbds) {
      const dir = join(devices, name, 'statistics');
      await mkdir(dir, { recursive: true });
      for (const [k, v] of Object.entries(stats)) await atomic(join(dir, k), `${v}\n`);
    }
    // Devices of domains that are gone disappear from sysfs.
    const { readdir } = await import('node:fs/promises');
    for (const name of await readdir(devices)) {
      if (!s.vbds.has(name)) await rm(join(devices, name), { recursive: true, force: true });
    }
    await atomic(this.procNetDev, s.netdev);
    await atomic(this.statePath, s.state);
  }

  stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    return this.#writeChain;
  }
}

function randomHex(): string {
  return Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
}

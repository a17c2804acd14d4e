import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { readFile, rename, writeFile, open as openFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { VirtError } from '../../virt/errors.ts';
import type { VirtUri } from '../../virt/uri.ts';
import { asNumber, asObject, asEnum, invalid as malformed, isInvalid } from '../../util/validate.ts';
import type { Driver } from '../driver.ts';
import type { OpenContext } from '../driver.ts';
import type { BulkReadOptions, BulkStats, DomainRef, HostInfo, ListOptions, ShutdownOptions } from '../types.ts';
import { DEFAULT_HOST } from './default-host.ts';
import { parseDomain, parseHostFile, type TestHostFile } from './host-file.ts';
import { SimDomain } from './simulation.ts';

const MAX_HOST_FILE_BYTES = 64 * 1024 * 1024;
const SAVE_FORMAT = 'virt-exporter-test-save/1';

/**
 * The in-memory host behind the test driver. One per URI, shared by every
 * connection to it in this process (as libvirt's test driver), so an admin
 * read-write connection and the collectors' read-only one see the same host.
 */
export class TestHost {
  readonly hostSpec: TestHostFile['host'];
  readonly domains = new Map<string, SimDomain>();
  readonly now: () => number;
  #nextId = 1;

  constructor(file: TestHostFile, now: () => number = Date.now) {
    this.hostSpec = file.host;
    this.now = now;
    const t = now();
    let i = 0;
    for (const spec of file.domains) {
      const d = new SimDomain(spec);
      if (spec.state !== 'shutoff') {
        // Domains of a loaded host have been up for a while (1 to 24 h), so counters look lived-in.
        d.boot(this.#nextId++, t - 3_600_000 * (1 + (i++ % 24)), 'booted');
        if (spec.state === 'paused') d.transition('paused', 'user', t);
      }
      this.domains.set(spec.uuid, d);
    }
  }

  find(key: string): SimDomain {
    const byUuid = this.domains.get(key.toLowerCase());
    if (byUuid !== undefined) return byUuid;
    for (const d of this.domains.values()) {
      if (d.spec.name === key || (d.id !== null && String(d.id) === key)) return d;
    }
    throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain with name, UUID or id ${JSON.stringify(key)}`, { driver: 'test', domain: key });
  }

  nextId(): number {
    return this.#nextId++;
  }
}

const hosts = new Map<string, Promise<TestHost>>();

async function loadHostFile(path: string): Promise<TestHost> {
  let text: string;
  try {
    // O_NONBLOCK: opening a FIFO does not wait for a writer; it is then refused as not a regular file.
    const fh = await openFile(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new VirtError('VIRT_ERR_XML_ERROR', `host file ${path} is not a regular file (a FIFO, device or directory); refusing to read it`, { driver: 'test' });
      if (st.size > MAX_HOST_FILE_BYTES) throw new VirtError('VIRT_ERR_XML_ERROR', `host file ${path} is ${st.size} bytes; the limit is ${MAX_HOST_FILE_BYTES}`);
      // Read at most the limit plus one byte, whatever the size said (a file that grows meanwhile).
      const chunks: Buffer[] = [];
      let got = 0;
      for (;;) {
        const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, MAX_HOST_FILE_BYTES + 1 - got));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, got);
        if (bytesRead === 0) break;
        chunks.push(chunk.subarray(0, bytesRead));
        got += bytesRead;
        if (got > MAX_HOST_FILE_BYTES) throw new VirtError('VIRT_ERR_XML_ERROR', `host file ${path} is larger than the limit of ${MAX_HOST_FILE_BYTES} bytes`);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof VirtError) throw err;
    throw new VirtError('VIRT_ERR_NO_CONNECT', `cannot read host file ${path}: ${(err as Error).message}`, { cause: err, driver: 'test' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new VirtError('VIRT_ERR_XML_ERROR', `host file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err, driver: 'test' });
  }
  try {
    return new TestHost(parseHostFile(json));
  } catch (err) {
    if (isInvalid(err)) throw new VirtError('VIRT_ERR_XML_ERROR', `host file ${path}: ${err.message}`, { driver: 'test' });
    throw err;
  }
}

export function testHostFor(uri: VirtUri): Promise<TestHost> {
  let host = hosts.get(uri.path);
  if (host === undefined) {
    host = uri.path === '/default' ? Promise.resolve(new TestHost(structuredClone(DEFAULT_HOST))) : loadHostFile(uri.path);
    hosts.set(uri.path, host);
    // A failed load is not cached: fixing the file and reconnecting works.
    host.catch(() => hosts.delete(uri.path));
  }
  return host;
}

/** Forgets every loaded host (tests). */
export function resetTestHosts(): void {
  hosts.clear();
}

function invalid(d: SimDomain, message: string): VirtError {
  return new VirtError('VIRT_ERR_OPERATION_INVALID', `domain ${d.spec.name}: ${message}`, { driver: 'test', domain: d.spec.name });
}

function ref(d: SimDomain): DomainRef {
  return { name: d.spec.name, uuid: d.spec.uuid, id: d.id };
}

function checkFile(file: string): void {
  if (typeof file !== 'string' || !isAbsolute(file) || file.split('/').includes('..')) {
    throw new VirtError('VIRT_ERR_INVALID_ARG', `save file must be an absolute path without "..", got ${JSON.stringify(file)}`);
  }
}

export function createTestDriver(host: TestHost): Driver {
  const now = host.now;
  return {
    name: 'test',
    close: () => Promise.resolve(),
    version: () => Promise.resolve('1.0.0'),
    hostInfo: (): Promise<HostInfo> => {
      const h = host.hostSpec;
      let used = 0;
      for (const d of host.domains.values()) if (d.state !== 'shutoff') used += d.spec.memoryMiB;
      return Promise.resolve({
        hostname: h.hostname,
        model: h.model,
        cpus: h.cpus,
        mhz: h.mhz,
        nodes: h.nodes,
        sockets: h.sockets,
        cores: h.cores,
        threads: h.threads,
        memoryBytes: h.memoryMiB * 1024 * 1024,
        freeMemoryBytes: Math.max(0, h.memoryMiB - used) * 1024 * 1024,
        hypervisor: 'test',
        hypervisorVersion: '1.0.0',
      });
    },
    listDomains: (opts?: ListOptions) => {
      const active = opts?.active ?? true;
      const inactive = opts?.inactive ?? true;
      const out: DomainRef[] = [];
      for (const d of host.domains.values()) {
        if (d.state === 'shutoff' ? inactive : active) out.push(ref(d));
      }
      return Promise.resolve(out);
    },
    lookupDomain: (key) => Promise.resolve(ref(host.find(key))),
    domainInfo: (key) => Promise.resolve(host.find(key).info(now())),
    domainDefinition: (key) => Promise.resolve(structuredClone(host.find(key).spec)),
    allDomainStats: (opts: BulkReadOptions): Promise<BulkStats> => {
      const t = now();
      const groups = new Set<string>(opts.groups);
      const domains = [];
      for (const d of host.domains.values()) {
        if (d.state === 'shutoff' && opts.inactive === false) continue;
        domains.push(d.stats(t, groups));
      }
      return Promise.resolve({ domains, errors: [] });
    },

    define: (definition: unknown) => {
      let spec;
      try {
        spec = parseDomain(definition, 'definition', 'shutoff');
      } catch (err) {
        if (isInvalid(err)) return Promise.reject(new VirtError('VIRT_ERR_XML_ERROR', err.message, { driver: 'test' }));
        throw err;
      }
      for (const d of host.domains.values()) {
        if (d.spec.name === spec.name && d.spec.uuid !== spec.uuid) {
          return Promise.reject(new VirtError('VIRT_ERR_DOM_EXIST', `a domain named ${spec.name} already exists with UUID ${d.spec.uuid}`, { domain: spec.name }));
        }
      }
      const existing = host.domains.get(spec.uuid);
      if (existing !== undefined) {
        // Redefining keeps the running instance; the new definition applies from the next boot.
        existing.spec = { ...spec, state: existing.spec.state };
        return Promise.resolve(ref(existing));
      }
      const d = new SimDomain({ ...spec, state: 'shutoff' });
      host.domains.set(spec.uuid, d);
      return Promise.resolve(ref(d));
    },
    undefine: (key) => {
      const d = host.find(key);
      if (d.state !== 'shutoff') return Promise.reject(invalid(d, `cannot undefine while ${d.state}; shut it down or destroy it first`));
      host.domains.delete(d.spec.uuid);
      return Promise.resolve();
    },
    start: (key) => {
      const d = host.find(key);
      if (d.state !== 'shutoff') return Promise.reject(invalid(d, `is already ${d.state}`));
      d.boot(host.nextId(), now(), 'booted');
      return Promise.resolve();
    },
    shutdown: (key, _opts?: ShutdownOptions) => {
      const d = host.find(key);
      if (d.state !== 'running') return Promise.reject(invalid(d, `cannot shut down while ${d.state}`));
      d.transition('shutoff', 'shutdown', now());
      return Promise.resolve();
    },
    reboot: (key) => {
      const d = host.find(key);
      if (d.state !== 'running') return Promise.reject(invalid(d, `cannot reboot while ${d.state}`));
      d.transition('running', 'rebooted', now());
      return Promise.resolve();
    },
    destroy: (key) => {
      const d = host.find(key);
      if (d.state === 'shutoff') return Promise.reject(invalid(d, 'is not running'));
      d.transition('shutoff', 'destroyed', now());
      return Promise.resolve();
    },
    suspend: (key) => {
      const d = host.find(key);
      if (d.state !== 'running') return Promise.reject(invalid(d, `cannot suspend while ${d.state}`));
      d.transition('paused', 'user', now());
      return Promise.resolve();
    },
    resume: (key) => {
      const d = host.find(key);
      if (d.state !== 'paused') return Promise.reject(invalid(d, `cannot resume while ${d.state}`));
      d.transition('running', 'unpaused', now());
      return Promise.resolve();
    },
    save: async (key, file) => {
      checkFile(file);
      const d = host.find(key);
      if (d.state === 'shutoff') throw invalid(d, 'is not running');
      const image = { format: SAVE_FORMAT, uuid: d.spec.uuid, definition: d.spec, ...d.snapshot(now()) };
      const tmp = `${file}.tmp-${randomUUID()}`;
      await writeFile(tmp, JSON.stringify(image), { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
      d.transition('shutoff', 'saved', now());
    },
    restore: async (file) => {
      checkFile(file);
      let image: Record<string, unknown>;
      try {
        const text = await readFile(file, 'utf8');
        image = asObject(JSON.parse(text), 'image');
        if (image.format !== SAVE_FORMAT) throw malformed('image.format', `not a test driver save image`);
      } catch (err) {
        throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot restore from ${file}: ${(err as Error).message}`, { cause: err });
      }
      let spec;
      let runSeconds: number;
      let state: 'running' | 'paused';
      try {
        spec = parseDomain(image.definition, 'image.definition', 'shutoff');
        runSeconds = asNumber(image.runSeconds, 'image.runSeconds', { min: 0 });
        state = asEnum(image.state, 'image.state', ['running', 'paused'] as const);
      } catch (err) {
        throw new VirtError('VIRT_ERR_INVALID_ARG', `cannot restore from ${file}: ${(err as Error).message}`, { cause: err });
      }
      let d = host.domains.get(spec.uuid);
      if (d === undefined) {
        d = new SimDomain({ ...spec, state: 'shutoff' });
        host.domains.set(spec.uuid, d);
      } else if (d.state !== 'shutoff') {
        throw invalid(d, `cannot restore over a domain that is ${d.state}`);
      }
      d.restoreFrom({ runSeconds, state }, host.nextId(), now());
      return ref(d);
    },
  };
}

export async function openTestDriver(uri: VirtUri, _ctx: OpenContext): Promise<Driver> {
  return createTestDriver(await testHostFor(uri));
}

/**
 * virt-proxy wire protocol, version 1 (native/PROTOCOL.md is the reference;
 * native/vp-protocol.h holds the same constants). Pure encode/decode: every
 * reply is validated against the documented bounds before anything is
 * believed, and any deviation is a VIRT_ERR_RPC.
 */
import { guestView } from '../types.ts';
import { VirtError, type VirtErrorCode } from '../../virt/errors.ts';
import type { XenDomainReading, XenHostReading, XenVcpuReading } from './types.ts';

export const PROTO_VERSION = 1;
export const PREFIX_LEN = 4;
export const HEADER_LEN = 8;
export const MAX_REQUEST_BODY = 64;
export const MAX_REPLY_BODY = 4 * 1024 * 1024;

export const REQ = { version: 0x01, hostInfo: 0x02, listDomains: 0x03 } as const;
export const REPLY_BIT = 0x80;
/** The greeting the proxy sends first on every connection (serial 0); a refused peer gets an error frame instead. */
export const HELLO = 0x80;
export const TYPE_ERROR = 0xff;

export const STATUS = {
  ok: 0,
  badFrame: 1,
  badVersion: 2,
  unknownType: 3,
  badRequest: 4,
  xenAbsent: 5,
  xenFailed: 6,
  denied: 7,
  busy: 8,
  unsupportedXen: 9,
} as const;

export const MAX_ERROR_MSG = 512;
export const MAX_DOMAINS_PER_REPLY = 256;
export const MAX_VBDS_PER_DOMAIN = 32;
export const MAX_VIFS_PER_DOMAIN = 32;
export const MAX_VCPUS_PER_DOMAIN = 512;
export const LIST_OPT_DEVICES = 0x1;
export const LIST_OPT_VCPUS = 0x2;
/** Bit 15 of a LIST_DOMAINS reply's count: each record ends with a vCPU block. */
export const LIST_COUNT_VCPUS = 0x8000;
const VCPU_ONLINE = 0x1;
const VCPU_BLOCKED = 0x2;
const VCPU_RUNNING = 0x4;
/** Domain ids at or above DOMID_FIRST_RESERVED (0x7ff0) are never real domains. */
export const DOMID_FIRST_RESERVED = 0x7ff0;

const STATUS_CODES: Record<number, VirtErrorCode> = {
  [STATUS.badFrame]: 'VIRT_ERR_RPC',
  [STATUS.badVersion]: 'VIRT_ERR_RPC',
  [STATUS.unknownType]: 'VIRT_ERR_RPC',
  [STATUS.badRequest]: 'VIRT_ERR_RPC',
  [STATUS.xenAbsent]: 'VIRT_ERR_NO_CONNECT',
  [STATUS.xenFailed]: 'VIRT_ERR_OPERATION_FAILED',
  [STATUS.denied]: 'VIRT_ERR_OPERATION_DENIED',
  [STATUS.busy]: 'VIRT_ERR_NO_CONNECT',
  [STATUS.unsupportedXen]: 'VIRT_ERR_NO_CONNECT',
};

const DRIVER = 'xen/proxy';

export function isKnownStatus(status: number): boolean {
  return status === STATUS.ok || STATUS_CODES[status] !== undefined;
}

export function rpcError(message: string): VirtError {
  return new VirtError('VIRT_ERR_RPC', `virt-proxy protocol error: ${message}`, { driver: DRIVER });
}

/** Builds one request frame (prefix included). */
export function encodeRequest(type: number, serial: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const body = HEADER_LEN + payload.length;
  if (body > MAX_REQUEST_BODY) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `virt-proxy request too large (${body} bytes)`);
  const buf = Buffer.alloc(PREFIX_LEN + body);
  buf.writeUInt32BE(body, 0);
  buf.writeUInt8(PROTO_VERSION, 4);
  buf.writeUInt8(type, 5);
  buf.writeUInt16BE(0, 6);
  buf.writeUInt32BE(serial >>> 0, 8);
  Buffer.from(payload).copy(buf, PREFIX_LEN + HEADER_LEN);
  return buf;
}

/**
 * A LIST_DOMAINS request. `details` asks for the per-domain details a bulk
 * read needs: the device counters and the per-vCPU readings (options 0 and 1
 * together); without it, the domain records alone (lookups).
 */
export function listDomainsPayload(first: number, max: number, details: boolean): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt16BE(first, 0);
  p.writeUInt16BE(max, 2);
  p.writeUInt32BE(details ? LIST_OPT_DEVICES | LIST_OPT_VCPUS : 0, 4);
  return p;
}

export interface ReplyFrame {
  type: number;
  status: number;
  serial: number;
  payload: Buffer;
}

/**
 * Reads the length prefix at the start of buf. Returns the whole frame
 * length when complete, 0 when more bytes are needed; throws on a length
 * outside the bounds.
 */
export function replyFrameLength(buf: Buffer): number {
  if (buf.length < PREFIX_LEN) return 0;
  const body = buf.readUInt32BE(0);
  if (body < HEADER_LEN || body > MAX_REPLY_BODY) throw rpcError(`reply length ${body} outside ${HEADER_LEN}..${MAX_REPLY_BODY}`);
  return buf.length >= PREFIX_LEN + body ? PREFIX_LEN + body : 0;
}

/** Splits a complete frame (prefix included) into header fields and payload. */
export function decodeFrame(frame: Buffer): ReplyFrame {
  const version = frame.readUInt8(4);
  if (version !== PROTO_VERSION) throw rpcError(`reply protocol version ${version}, expected ${PROTO_VERSION}`);
  return {
    type: frame.readUInt8(5),
    status: frame.readUInt16BE(6),
    serial: frame.readUInt32BE(8),
    payload: frame.subarray(PREFIX_LEN + HEADER_LEN),
  };
}

/** Bounds-checked big-endian reader; any overrun is an RPC error. */
export class Reader {
  private readonly buf: Buffer;
  private off = 0;
  private readonly what: string;

  constructor(buf: Buffer, what: string) {
    this.buf = buf;
    this.what = what;
  }

  private need(n: number): number {
    if (this.off + n > this.buf.length) throw rpcError(`${this.what} reply truncated at byte ${this.off} (needs ${n} more)`);
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(): number {
    return this.buf.readUInt8(this.need(1));
  }
  u16(): number {
    return this.buf.readUInt16BE(this.need(2));
  }
  u32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }
  u64(): bigint {
    return this.buf.readBigUInt64BE(this.need(8));
  }
  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
  str(max: number): string {
    const n = this.u16();
    if (n > max) throw rpcError(`${this.what} string of ${n} bytes exceeds ${max}`);
    const raw = this.bytes(n);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(raw);
    if (text.includes('\0')) throw rpcError(`${this.what} string contains NUL`);
    return text;
  }
  end(): void {
    if (this.off !== this.buf.length) throw rpcError(`${this.what} reply has ${this.buf.length - this.off} trailing bytes`);
  }
}

/** The VirtError an error reply stands for. */
export function statusError(status: number, payload: Buffer): VirtError {
  let message: string;
  try {
    const r = new Reader(payload, 'error');
    message = r.str(MAX_ERROR_MSG);
    r.end();
  } catch {
    message = '(unreadable error message)';
  }
  const code = STATUS_CODES[status] ?? 'VIRT_ERR_RPC';
  return new VirtError(code, `virt-proxy: ${message} (status ${status})`, { driver: DRIVER });
}

function num(v: bigint): number {
  return Number(v);
}

function checkPageSize(size: number): number {
  // x86 uses 4 KiB pages; anything that is not a power of two in 4 KiB..1 MiB is garbage.
  if (size < 4096 || size > 1024 * 1024 || (size & (size - 1)) !== 0) throw rpcError(`page size ${size} is not a power of two in 4096..1048576`);
  return size;
}

export function decodeHello(payload: Buffer): { protocol: number; proxy: string } {
  const r = new Reader(payload, 'HELLO');
  const out = { protocol: r.u16(), proxy: r.str(32) };
  r.end();
  if (out.protocol !== PROTO_VERSION) throw rpcError(`virt-proxy speaks protocol ${out.protocol}, this client ${PROTO_VERSION}`);
  return out;
}

export interface VersionReply {
  protocol: number;
  major: number;
  minor: number;
  extra: string;
  proxy: string;
}

export function decodeVersion(payload: Buffer): VersionReply {
  const r = new Reader(payload, 'VERSION');
  const out = { protocol: r.u16(), major: r.u32(), minor: r.u32(), extra: r.str(16), proxy: r.str(32) };
  r.end();
  return out;
}

export function xenVersionString(major: number, minor: number, extra: string): string {
  return `${major}.${minor}${extra}`;
}

export function decodeHostInfo(payload: Buffer): XenHostReading {
  const r = new Reader(payload, 'HOST_INFO');
  const cpus = r.u32();
  const khz = r.u32();
  const nodes = r.u32();
  const cores = r.u32();
  const threads = r.u32();
  const page = BigInt(checkPageSize(r.u32()));
  const total = r.u64();
  const free = r.u64();
  const major = r.u32();
  const minor = r.u32();
  const extra = r.str(16);
  r.end();
  // physinfo has no socket count; derive sockets per node as libvirt's node info wants it.
  const perSocket = Math.max(1, cores) * Math.max(1, threads) * Math.max(1, nodes);
  return {
    cpus,
    mhz: Math.floor(khz / 1000),
    nodes,
    sockets: Math.max(1, Math.floor(cpus / perSocket)),
    cores,
    threads,
    totalBytes: num(total * page),
    freeBytes: num(free * page),
    xenVersion: xenVersionString(major, minor, extra),
  };
}

/** Xen vbd numbering (docs/misc/vbd-interface.txt) to a Linux-style name. */
export function vbdName(devid: number): string {
  const letters = (disk: number): string => {
    let s = '';
    let n = disk + 1;
    while (n > 0) {
      n -= 1;
      s = String.fromCharCode(97 + (n % 26)) + s;
      n = Math.floor(n / 26);
    }
    return s;
  };
  const name = (prefix: string, disk: number, part: number): string => `${prefix}${letters(disk)}${part === 0 ? '' : String(part)}`;
  if ((devid & (1 << 28)) !== 0 && devid >>> 29 === 0) return name('xvd', (devid >>> 8) & 0xfffff, devid & 0xff);
  const major = devid >>> 8;
  const minor = devid & 0xff;
  if (devid >>> 16 === 0) {
    if (major === 202) return name('xvd', minor >> 4, minor & 15);
    if (major === 8) return name('sd', minor >> 4, minor & 15);
    if (major === 3) return name('hd', minor >> 6, minor & 63);
    if (major === 22) return name('hd', 2 + (minor >> 6), minor & 63);
  }
  return String(devid);
}

const UINT32_MAX_PAGES = 0xffffffffn;

function uuidOf(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Decodes one LIST_DOMAINS reply; `first`/`max` are what was asked, to check the answer against. */
export function decodeDomainList(payload: Buffer, first: number, max: number): XenDomainReading[] {
  const r = new Reader(payload, 'LIST_DOMAINS');
  const page = BigInt(checkPageSize(r.u32()));
  const rawCount = r.u16();
  const withVcpus = (rawCount & LIST_COUNT_VCPUS) !== 0;
  const count = rawCount & ~LIST_COUNT_VCPUS;
  if (count > max) throw rpcError(`LIST_DOMAINS returned ${count} domains for max ${max}`);
  const out: XenDomainReading[] = [];
  let last = first - 1;
  for (let i = 0; i < count; i++) {
    const domid = r.u16();
    if (domid <= last || domid >= DOMID_FIRST_RESERVED) throw rpcError(`LIST_DOMAINS domain id ${domid} out of order or reserved`);
    last = domid;
    const flags = r.u32();
    const uuid = uuidOf(r.bytes(16));
    const tot = r.u64();
    const maxPages = r.u64();
    const cpuNs = r.u64();
    const online = r.u32();
    const maxVcpu = r.u32();
    const nvbd = r.u8();
    if (nvbd > MAX_VBDS_PER_DOMAIN) throw rpcError(`domain ${domid} has ${nvbd} vbds (max ${MAX_VBDS_PER_DOMAIN})`);
    const vbds: NonNullable<XenDomainReading['vbds']> = [];
    for (let j = 0; j < nvbd; j++) {
      const devid = r.u32();
      const rd = r.u64();
      const wr = r.u64();
      const rdSect = r.u64();
      const wrSect = r.u64();
      const oo = r.u64();
      vbds.push({
        device: vbdName(devid),
        devid,
        readRequests: num(rd),
        writeRequests: num(wr),
        readSectors: num(rdSect),
        writeSectors: num(wrSect),
        errors: num(oo),
      });
    }
    const nvif = r.u8();
    if (nvif > MAX_VIFS_PER_DOMAIN) throw rpcError(`domain ${domid} has ${nvif} vifs (max ${MAX_VIFS_PER_DOMAIN})`);
    const vifs: NonNullable<XenDomainReading['vifs']> = [];
    for (let j = 0; j < nvif; j++) {
      const index = r.u32();
      const host = {
        rxBytes: num(r.u64()), rxPackets: num(r.u64()), rxErrors: num(r.u64()), rxDrops: num(r.u64()),
        txBytes: num(r.u64()), txPackets: num(r.u64()), txErrors: num(r.u64()), txDrops: num(r.u64()),
      };
      // /proc/net/dev counts from the host side of the backend interface.
      vifs.push({ interface: `vif${domid}.${index}`, ...guestView(host) });
    }
    let vcpus: XenVcpuReading[] | undefined;
    if (withVcpus) {
      const nvcpu = r.u16();
      if (nvcpu > MAX_VCPUS_PER_DOMAIN) throw rpcError(`domain ${domid} has ${nvcpu} vCPU records (max ${MAX_VCPUS_PER_DOMAIN})`);
      vcpus = [];
      let lastId = -1;
      for (let j = 0; j < nvcpu; j++) {
        const id = r.u16();
        if (id <= lastId || id >= MAX_VCPUS_PER_DOMAIN || (maxVcpu !== 0xffffffff && id > maxVcpu)) throw rpcError(`domain ${domid} vCPU id ${id} out of order or above its maximum`);
        lastId = id;
        const f = r.u8();
        if ((f & ~(VCPU_ONLINE | VCPU_BLOCKED | VCPU_RUNNING)) !== 0) throw rpcError(`domain ${domid} vCPU ${id} has unknown flags 0x${f.toString(16)}`);
        const cpu = r.u32();
        vcpus.push({ id, online: (f & VCPU_ONLINE) !== 0, blocked: (f & VCPU_BLOCKED) !== 0, running: (f & VCPU_RUNNING) !== 0, cpu, timeSeconds: num(r.u64()) / 1e9 });
      }
    }
    const unlimited = maxPages >= UINT32_MAX_PAGES;
    const currentBytes = num(tot * page);
    out.push({
      domid,
      uuid,
      flags,
      currentBytes,
      maximumBytes: unlimited ? currentBytes : num(maxPages * page),
      maxMemoryUnlimited: unlimited,
      cpuTimeSeconds: num(cpuNs) / 1e9,
      onlineVcpus: online,
      maxVcpuId: maxVcpu === 0xffffffff ? -1 : maxVcpu,
      vbds,
      vifs,
      ...(vcpus !== undefined ? { vcpus } : {}),
    });
  }
  r.end();
  return out;
}

/**
 * libvirt's RPC wire format (src/rpc/virnetprotocol.x, virkeepaliveprotocol.x,
 * src/remote/remote_protocol.x): the packet header, the REMOTE and KEEPALIVE
 * programs, remote_error, typed parameters and the domain structures this
 * driver uses. Written from the public protocol descriptions.
 */
import { VirtError, type VirtErrorCode } from '../../virt/errors.ts';
import { XdrReader, XdrWriter } from './xdr.ts';
import type { HostTopology } from '../types.ts';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROC_PING = 1;
export const KEEPALIVE_PROC_PONG = 2;

/** VIR_NET_MESSAGE_MAX of current libvirt (32 MiB; older daemons send at most 16 MiB). */
export const MESSAGE_MAX = 33554432;
export const HEADER_BYTES = 24;
/** REMOTE_STRING_MAX */
export const STRING_MAX = 4194304;
export const DOMAIN_LIST_MAX = 16384;
export const ALL_DOMAIN_STATS_MAX = 4096;
export const AUTH_TYPE_LIST_MAX = 20;
export const UUID_BYTES = 16;

export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3, CALL_WITH_FDS: 4, REPLY_WITH_FDS: 5 } as const;
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

/** The REMOTE procedures this driver calls or receives. */
export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  CONNECT_GET_TYPE: 3,
  CONNECT_GET_VERSION: 4,
  NODE_GET_INFO: 6,
  DOMAIN_CREATE: 9,
  DOMAIN_DEFINE_XML: 11,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_INFO: 16,
  DOMAIN_LOOKUP_BY_ID: 22,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  DOMAIN_REBOOT: 27,
  DOMAIN_RESUME: 28,
  DOMAIN_SHUTDOWN: 33,
  DOMAIN_SUSPEND: 34,
  DOMAIN_UNDEFINE: 35,
  DOMAIN_RESTORE: 54,
  DOMAIN_SAVE: 55,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  AUTH_POLKIT: 70,
  NODE_GET_FREE_MEMORY: 102,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_GET_STATE: 212,
  DOMAIN_SAVE_IMAGE_GET_XML_DESC: 235,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
} as const;

export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;
export const Feature = { TYPED_PARAM_STRING: 9, PROGRAM_KEEPALIVE: 10 } as const;
export const CONNECT_RO = 1;
export const DOMAIN_EVENT_ID_LIFECYCLE = 0;

/** virDomainStatsTypes */
export const StatsType = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8, INTERFACE: 16, BLOCK: 32 } as const;
/** virConnectGetAllDomainStatsFlags */
export const StatsFlag = { ACTIVE: 1, INACTIVE: 2, NOWAIT: 1 << 29 } as const;
export const ListFlag = { ACTIVE: 1, INACTIVE: 2 } as const;

export const LIFECYCLE_EVENTS = ['defined', 'undefined', 'started', 'suspended', 'resumed', 'stopped', 'shutdown', 'pmsuspended', 'crashed'] as const;

export interface Header {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export interface Packet {
  header: Header;
  /** The payload, after the header. */
  body: Buffer;
}

export function decodePacket(frame: Buffer): Packet {
  // frame excludes the length word (the transport's decoder strips it).
  if (frame.length < HEADER_BYTES) throw new VirtError('VIRT_ERR_RPC', `libvirt packet of ${frame.length} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  const header: Header = {
    prog: frame.readUInt32BE(0),
    vers: frame.readUInt32BE(4),
    proc: frame.readInt32BE(8),
    type: frame.readInt32BE(12),
    serial: frame.readUInt32BE(16),
    status: frame.readInt32BE(20),
  };
  return { header, body: frame.subarray(HEADER_BYTES) };
}

/** A whole packet: length word, header, payload. */
export function encodePacket(h: Header, payload?: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter(payload === undefined ? 28 : 512);
  w.uint(0).uint(h.prog).uint(h.vers).int(h.proc).int(h.type).uint(h.serial).int(h.status);
  payload?.(w);
  w.patchUint(0, w.length);
  return w.finish();
}

export function callPacket(proc: number, serial: number, payload?: (w: XdrWriter) => void): Buffer {
  return encodePacket({ prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc, type: MessageType.CALL, serial, status: MessageStatus.OK }, payload);
}

export function keepalivePacket(proc: number): Buffer {
  return encodePacket({ prog: KEEPALIVE_PROGRAM, vers: KEEPALIVE_PROTOCOL_VERSION, proc, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK });
}

// --- remote_error --------------------------------------------------------

/** libvirt's virErrorNumber values this driver maps; others become VIRT_ERR_OPERATION_FAILED. */
const LIBVIRT_CODES: Record<number, [string, VirtErrorCode]> = {
  1: ['VIR_ERR_INTERNAL_ERROR', 'VIRT_ERR_OPERATION_FAILED'],
  3: ['VIR_ERR_NO_SUPPORT', 'VIRT_ERR_NO_SUPPORT'],
  5: ['VIR_ERR_NO_CONNECT', 'VIRT_ERR_NO_CONNECT'],
  6: ['VIR_ERR_INVALID_CONN', 'VIRT_ERR_NO_CONNECT'],
  7: ['VIR_ERR_INVALID_DOMAIN', 'VIRT_ERR_NO_DOMAIN'],
  8: ['VIR_ERR_INVALID_ARG', 'VIRT_ERR_INVALID_ARG'],
  9: ['VIR_ERR_OPERATION_FAILED', 'VIRT_ERR_OPERATION_FAILED'],
  27: ['VIR_ERR_XML_ERROR', 'VIRT_ERR_XML_ERROR'],
  28: ['VIR_ERR_DOM_EXIST', 'VIRT_ERR_DOM_EXIST'],
  29: ['VIR_ERR_OPERATION_DENIED', 'VIRT_ERR_OPERATION_DENIED'],
  35: ['VIR_ERR_XML_DETAIL', 'VIRT_ERR_XML_ERROR'],
  38: ['VIR_ERR_SYSTEM_ERROR', 'VIRT_ERR_OPERATION_FAILED'],
  39: ['VIR_ERR_RPC', 'VIRT_ERR_RPC'],
  42: ['VIR_ERR_NO_DOMAIN', 'VIRT_ERR_NO_DOMAIN'],
  45: ['VIR_ERR_AUTH_FAILED', 'VIRT_ERR_AUTH_FAILED'],
  55: ['VIR_ERR_OPERATION_INVALID', 'VIRT_ERR_OPERATION_INVALID'],
  67: ['VIR_ERR_CONFIG_UNSUPPORTED', 'VIRT_ERR_XML_ERROR'],
  68: ['VIR_ERR_OPERATION_TIMEOUT', 'VIRT_ERR_OPERATION_TIMEOUT'],
  74: ['VIR_ERR_ARGUMENT_UNSUPPORTED', 'VIRT_ERR_INVALID_ARG'],
  84: ['VIR_ERR_OPERATION_UNSUPPORTED', 'VIRT_ERR_NO_SUPPORT'],
};

/** An error libvirt itself returned: a VirtError that keeps libvirt's own code, name and message. */
export class LibvirtError extends VirtError {
  readonly libvirtCode: number;
  readonly libvirtName: string;
  readonly libvirtDomain: number;
  readonly libvirtMessage: string;

  constructor(code: number, domain: number, message: string, opts: { domain?: string } = {}) {
    const known = LIBVIRT_CODES[code];
    const name = known?.[0] ?? `VIR_ERR_${code}`;
    super(known?.[1] ?? 'VIRT_ERR_OPERATION_FAILED', `libvirt: ${message} (${name}, code ${code})`, { driver: 'libvirt', ...opts });
    this.libvirtCode = code;
    this.libvirtName = name;
    this.libvirtDomain = domain;
    this.libvirtMessage = message;
  }
}

export function decodeRemoteError(body: Buffer): LibvirtError {
  const r = new XdrReader(body);
  const code = r.int();
  const domain = r.int();
  const message = r.optional((x) => x.string(STRING_MAX));
  r.int(); // level
  const dom = r.optional(readDomain);
  r.optional((x) => x.string(STRING_MAX));
  r.optional((x) => x.string(STRING_MAX));
  r.optional((x) => x.string(STRING_MAX));
  r.int();
  r.int();
  r.optional((x) => {
    x.string(STRING_MAX);
    x.fixedOpaque(UUID_BYTES);
  });
  r.end('remote_error');
  return new LibvirtError(code, domain, message ?? 'unknown error', dom === null ? {} : { domain: dom.name });
}

// --- domains and UUIDs ---------------------------------------------------

export interface WireDomain {
  name: string;
  uuid: string;
  id: number;
}

export function uuidToString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function uuidToBytes(s: string): Buffer {
  const hex = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new VirtError('VIRT_ERR_INVALID_ARG', `not a UUID: ${JSON.stringify(s)}`);
  return Buffer.from(hex, 'hex');
}

export function readDomain(r: XdrReader): WireDomain {
  const name = r.string(STRING_MAX);
  const uuid = uuidToString(r.fixedOpaque(UUID_BYTES));
  const id = r.int();
  return { name, uuid, id };
}

export function writeDomain(w: XdrWriter, d: WireDomain): void {
  w.string(d.name, STRING_MAX).fixedOpaque(uuidToBytes(d.uuid), UUID_BYTES).int(d.id);
}

// --- typed parameters ----------------------------------------------------

export type TypedValue = number | boolean | string;

/** remote_typed_param: field name and a union on virTypedParameterType (1..7). */
export function readTypedParam(r: XdrReader): [string, TypedValue] {
  const field = r.string(STRING_MAX);
  const type = r.int();
  switch (type) {
    case 1: return [field, r.int()];
    case 2: return [field, r.uint()];
    case 3: return [field, Number(r.hyper())];
    case 4: return [field, Number(r.uhyper())];
    case 5: return [field, r.double()];
    case 6: return [field, r.int() !== 0];
    case 7: return [field, r.string(STRING_MAX)];
    default: throw new VirtError('VIRT_ERR_RPC', `malformed XDR: typed parameter ${JSON.stringify(field.slice(0, 64))} has unknown type ${type}`);
  }
}

export interface StatsRecord {
  dom: WireDomain;
  params: Map<string, TypedValue>;
}

export function readAllDomainStats(r: XdrReader): StatsRecord[] {
  return r.array(DOMAIN_LIST_MAX, (x) => {
    const dom = readDomain(x);
    const params = new Map<string, TypedValue>();
    // A typed parameter takes at least 12 bytes (empty name, type, 4-byte value).
    for (const [k, v] of x.array(ALL_DOMAIN_STATS_MAX, readTypedParam, 12)) params.set(k, v);
    return { dom, params };
  }, 28);
}

/** virNodeInfo: the host topology plus its CPU model and memory (in KiB, as libvirt sends it). */
export interface NodeInfo extends HostTopology {
  model: string;
  memoryKiB: number;
}

export function readNodeInfo(r: XdrReader): NodeInfo {
  // char model[32]: a fixed array of 32 XDR chars, each sent as a 4-byte int.
  const chars: number[] = [];
  for (let i = 0; i < 32; i++) chars.push(r.int() & 0xff);
  const end = chars.indexOf(0);
  const model = Buffer.from(end === -1 ? chars : chars.slice(0, end)).toString('latin1');
  return { model, memoryKiB: Number(r.uhyper()), cpus: r.int(), mhz: r.int(), nodes: r.int(), sockets: r.int(), cores: r.int(), threads: r.int() };
}

export interface LifecycleEvent {
  callbackId: number;
  dom: WireDomain;
  event: number;
  detail: number;
}

export function readLifecycleEvent(body: Buffer): LifecycleEvent {
  const r = new XdrReader(body);
  const callbackId = r.int();
  const dom = readDomain(r);
  const event = r.int();
  const detail = r.int();
  r.end('lifecycle event');
  return { callbackId, dom, event, detail };
}

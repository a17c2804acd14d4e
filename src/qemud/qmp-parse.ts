/** Pure parsers of QMP replies into typed readings (unit-tested on recorded replies). */
import type { BlockReading, DomainState, MemoryReading } from '../drivers/types.ts';
import { VirtError } from '../virt/errors.ts';
import { isRecord, u64 } from './json.ts';

function preview(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))?.slice(0, 120) ?? String(v);
  } catch {
    return Array.isArray(v) ? 'an array' : typeof v;
  }
}

function malformed(what: string, v: unknown): VirtError {
  return new VirtError('VIRT_ERR_RPC', `malformed ${what} reply: ${preview(v)}`);
}

/** QEMU's own ceiling on vCPUs per machine is far below this. */
const MAX_VCPU_INDEX = 16383;

/** QEMU RunState -> domain state and reason. */
export function runStateToDomain(status: string): { state: DomainState; reason: string } {
  switch (status) {
    case 'running':
      return { state: 'running', reason: 'booted' };
    case 'paused':
      return { state: 'paused', reason: 'user' };
    case 'prelaunch':
    case 'inmigrate':
      return { state: 'paused', reason: 'starting-up' };
    case 'postmigrate':
    case 'finish-migrate':
      return { state: 'paused', reason: 'migration' };
    case 'save-vm':
    case 'restore-vm':
      return { state: 'paused', reason: 'save' };
    case 'io-error':
      return { state: 'paused', reason: 'ioerror' };
    case 'watchdog':
      return { state: 'paused', reason: 'watchdog' };
    case 'internal-error':
      // QEMU stopped the vCPUs (e.g. KVM could not run one); the process lives on.
      return { state: 'paused', reason: 'internal-error' };
    case 'guest-panicked':
      return { state: 'crashed', reason: 'panicked' };
    case 'shutdown':
      return { state: 'shutdown', reason: 'guest' };
    case 'suspended':
      return { state: 'pmsuspended', reason: 'guest' };
    case 'debug':
      return { state: 'paused', reason: 'debug' };
    default:
      return { state: 'nostate', reason: status };
  }
}

export function parseQueryStatus(v: unknown): string {
  if (!isRecord(v) || typeof v['status'] !== 'string') throw malformed('query-status', v);
  return v['status'];
}

/** vCPU index -> host thread id, from query-cpus-fast. */
export function parseCpusFast(v: unknown): number[] {
  if (!Array.isArray(v)) throw malformed('query-cpus-fast', v);
  const out: number[] = [];
  for (const c of v as unknown[]) {
    if (!isRecord(c)) throw malformed('query-cpus-fast', c);
    const index = c['cpu-index'];
    const tid = c['thread-id'];
    // The thread id becomes a /proc path: only a real, positive tid will do.
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index > MAX_VCPU_INDEX) throw malformed('query-cpus-fast', c);
    if (typeof tid !== 'number' || !Number.isSafeInteger(tid) || tid <= 0) throw malformed('query-cpus-fast', c);
    out[index] = tid;
  }
  return out;
}

export function parseBalloon(v: unknown): number {
  const actual = isRecord(v) ? u64(v['actual']) : undefined;
  if (actual === undefined) throw malformed('query-balloon', v);
  return actual;
}

/** Guest memory statistics; undefined when no guest driver has reported (last-update 0). */
export function parseGuestStats(v: unknown): MemoryReading['guest'] | undefined {
  if (!isRecord(v) || !isRecord(v['stats'])) throw malformed('guest-stats', v);
  const last = u64(v['last-update']);
  if (last === undefined || last === 0) return undefined;
  const s = v['stats'];
  const g: NonNullable<MemoryReading['guest']> = { lastUpdateSeconds: last };
  const set = (key: keyof NonNullable<MemoryReading['guest']>, src: string): void => {
    const x = u64(s[src]);
    if (x !== undefined) g[key] = x;
  };
  set('totalBytes', 'stat-total-memory');
  set('freeBytes', 'stat-free-memory');
  set('availableBytes', 'stat-available-memory');
  set('diskCachesBytes', 'stat-disk-caches');
  set('swapInBytes', 'stat-swap-in');
  set('swapOutBytes', 'stat-swap-out');
  set('majorFaults', 'stat-major-faults');
  set('minorFaults', 'stat-minor-faults');
  return g;
}

const NS = 1e9;

/**
 * Block statistics per device. Keyed by a stable name: `nameOf(node-name)`
 * (our own node names map back to the target dev), else the qdev id, else the
 * legacy device name; entries with none of these are skipped.
 */
export function parseBlockstats(v: unknown, nameOf: (nodeName: string) => string | undefined): BlockReading[] {
  if (!Array.isArray(v)) throw malformed('query-blockstats', v);
  const out: BlockReading[] = [];
  for (const e of v as unknown[]) {
    if (!isRecord(e) || !isRecord(e['stats'])) throw malformed('query-blockstats', e);
    const nodeName = typeof e['node-name'] === 'string' ? e['node-name'] : '';
    const qdev = typeof e['qdev'] === 'string' ? e['qdev'] : '';
    const legacy = typeof e['device'] === 'string' ? e['device'] : '';
    const device = nameOf(nodeName) ?? qdevId(qdev) ?? (legacy !== '' ? legacy : undefined);
    if (device === undefined) continue;
    const s = e['stats'];
    const n = (k: string): number => u64(s[k]) ?? 0;
    out.push({
      device,
      readBytes: n('rd_bytes'),
      writeBytes: n('wr_bytes'),
      readRequests: n('rd_operations'),
      writeRequests: n('wr_operations'),
      flushRequests: n('flush_operations'),
      readTimeSeconds: n('rd_total_time_ns') / NS,
      writeTimeSeconds: n('wr_total_time_ns') / NS,
      flushTimeSeconds: n('flush_total_time_ns') / NS,
      errors: n('failed_rd_operations') + n('failed_wr_operations') + n('failed_flush_operations'),
    });
  }
  return out;
}

/** "/machine/peripheral/vda/virtio-backend" -> "vda"; "/machine/peripheral/hda" -> "hda". */
function qdevId(qdev: string): string | undefined {
  const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
  return m?.[1];
}

export interface MigrateStatus {
  status: string;
  error?: string;
}

export function parseQueryMigrate(v: unknown): MigrateStatus {
  if (!isRecord(v)) throw malformed('query-migrate', v);
  const status = typeof v['status'] === 'string' ? v['status'] : 'none';
  return typeof v['error-desc'] === 'string' ? { status, error: v['error-desc'] } : { status };
}

import type { BlockReading, DomainRef, DomainState, MemoryReading } from '../drivers/types.ts';
import { VirtError } from '../virt/errors.ts';
import type { DomainDefinition } from './definition.ts';
import type { ProcFile } from './proc.ts';
import type { QmpClient } from './qmp.ts';
import type { RuntimeRecord, SaveRecord } from './store.ts';

/**
 * Run state of a domain as the QMP events and the lifecycle operations have
 * told it. Changed only through `nextState` (monitor.ts), never field by field.
 */
export interface RunStatus {
  readonly state: DomainState;
  readonly reason: string;
  /** QEMU announced a SHUTDOWN; a STOP that follows is part of shutting down. */
  readonly sawShutdown: boolean;
  /** Reason to report when the process exits (set by destroy, shutdown, save, a guest poweroff). */
  readonly expectingExit: string | null;
  /** When (ms) a BLOCK_IO_ERROR with action "stop" came: the STOP right after it is an I/O error pause. */
  readonly ioErrorAt: number | null;
  /** Bumped on every run-state change; a paused domain's block counters cannot move within one epoch. */
  readonly epoch: number;
  /** Balloon size in bytes (query-balloon at attach, then BALLOON_CHANGE events). */
  readonly balloonBytes: number | undefined;
}

export const SHUT_OFF: RunStatus = { state: 'shutoff', reason: 'unknown', sawShutdown: false, expectingExit: null, ioErrorAt: null, epoch: 0, balloonBytes: undefined };

/** The QMP connection of a running domain. */
export interface MonitorLink {
  qmp: QmpClient | null;
  attaching: Promise<QmpClient> | null;
  error: VirtError | null;
}

/** What the stats path remembers between reads of one run of the domain (cleared when it stops). */
export interface ReadCaches {
  /** vCPU index -> host thread id (query-cpus-fast). */
  vcpuTids: number[];
  vcpuRefreshedAt: number;
  vcpuRefreshing: boolean;
  /** Block readings of a paused domain, valid while the epoch stands. */
  block: { epoch: number; readings: BlockReading[] } | null;
  /** Virtual size of each disk by target, read from the image once per start. */
  capacity: Map<string, number>;
  /** Guest memory statistics from the balloon driver, as QEMU last had them. */
  guest: MemoryReading['guest'] | undefined;
  /** Until when (ms) and in which epoch QEMU cannot have newer guest statistics than `guest`. */
  guestFresh: { until: number; epoch: number };
  /** /proc/PID/stat of the QEMU, held open (null: not opened yet). */
  procStat: ProcFile | null;
  /** Per vCPU thread id: its /proc stat and schedstat, held open. */
  threads: Map<number, { stat: ProcFile; sched: ProcFile | null }>;
}

export function freshCaches(): ReadCaches {
  return { vcpuTids: [], vcpuRefreshedAt: 0, vcpuRefreshing: false, block: null, capacity: new Map(), guest: undefined, guestFresh: { until: 0, epoch: -1 }, procStat: null, threads: new Map() };
}

/** Closes the /proc files the caches hold (when the domain stops, or virt-qemud does). */
export function closeCaches(c: ReadCaches): void {
  c.procStat?.close();
  c.procStat = null;
  for (const t of c.threads.values()) {
    t.stat.close();
    t.sched?.close();
  }
  c.threads.clear();
}

/**
 * What virt-qemud knows of one domain: its stored definition and managed
 * save; while it runs, the configuration its QEMU was started with, the
 * runtime record of that QEMU, its monitor and run state.
 */
export class Domain {
  /** The stored definition: what define saved, and what the next start uses. */
  stored: DomainDefinition;
  /** The managed save image's record, if the domain has one. */
  managedSave: SaveRecord | null = null;
  /** The running configuration: the definition the running QEMU was started with (null while shut off). */
  running: DomainDefinition | null = null;
  /** The runtime record of the running QEMU, as kept in run/ (null while shut off). */
  runtime: RuntimeRecord | null = null;
  status: RunStatus = SHUT_OFF;
  readonly monitor: MonitorLink = { qmp: null, attaching: null, error: null };
  caches: ReadCaches = freshCaches();
  /** Tail of the per-domain operation queue (supervisor.ts). */
  lock: Promise<unknown> = Promise.resolve();
  stopWaiters: Array<() => void> = [];

  constructor(def: DomainDefinition) {
    this.stored = def;
  }

  get name(): string {
    return this.stored.name;
  }

  get state(): DomainState {
    return this.status.state;
  }

  get reason(): string {
    return this.status.reason;
  }

  get active(): boolean {
    return this.runtime !== null;
  }

  /** The configuration in effect: the running one while it runs, else the stored one. */
  get config(): DomainDefinition {
    return this.running ?? this.stored;
  }

  ref(): DomainRef {
    return { name: this.stored.name, uuid: this.stored.uuid, id: this.runtime?.id ?? null };
  }
}

export function invalidState(d: Domain, op: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_OPERATION_INVALID', `cannot ${op} domain ${d.name}: ${why} (state ${d.state})`, { domain: d.name });
}

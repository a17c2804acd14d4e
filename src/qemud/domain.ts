import type { BlockReading, DomainRef, DomainState, MemoryReading } from '../drivers/types.ts';
import { VirtError } from '../virt/errors.ts';
import type { DomainDefinition } from './definition.ts';
import type { QmpClient } from './qmp.ts';
import type { RuntimeRecord, SaveRecord } from './store.ts';

/** What virt-qemud knows of one domain: its definition and, while it runs, its QEMU. */
export class Domain {
  def: DomainDefinition;
  /** Configuration the running QEMU was started with. */
  live: DomainDefinition | null = null;
  rec: RuntimeRecord | null = null;
  state: DomainState = 'shutoff';
  reason = 'unknown';
  qmp: QmpClient | null = null;
  attaching: Promise<QmpClient> | null = null;
  monitorError: VirtError | null = null;
  vcpuTids: number[] = [];
  vcpuRefreshedAt = 0;
  vcpuRefreshing = false;
  /** Bumped on every run-state change; a paused domain's block counters cannot move within one epoch. */
  epoch = 0;
  blockCache: { epoch: number; readings: BlockReading[] } | null = null;
  /** Virtual size of each disk by target, read from the image once per start. */
  capacity = new Map<string, number>();
  balloonActual: number | undefined;
  guest: MemoryReading['guest'] | undefined;
  guestTimer: NodeJS.Timeout | undefined;
  /** Reason to report when the process exits (set by destroy/shutdown/save). */
  expectingExit: string | null = null;
  sawShutdown = false;
  save: SaveRecord | null = null;
  lock: Promise<unknown> = Promise.resolve();
  stopWaiters: Array<() => void> = [];

  constructor(def: DomainDefinition) {
    this.def = def;
  }

  get active(): boolean {
    return this.rec !== null;
  }

  get config(): DomainDefinition {
    return this.live ?? this.def;
  }

  ref(): DomainRef {
    return { name: this.def.name, uuid: this.def.uuid, id: this.rec?.id ?? null };
  }
}

export function invalidState(d: Domain, op: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_OPERATION_INVALID', `cannot ${op} domain ${d.def.name}: ${why} (state ${d.state})`, { domain: d.def.name });
}


/** What the supervisor's parts (process, monitor, stats, save-image) share: options, logger, store, ids, the save key. */
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';
import type { QemuUser } from './dac.ts';
import type { QemudPaths } from '../qemud-shared/paths.ts';
import type { Store } from './store.ts';

export interface SupervisorOptions {
  paths: QemudPaths;
  logger: Logger;
  /** Deadline of one QMP command on the read path. */
  qmpTimeoutMs: number;
  /** Deadline of one QMP command in a lifecycle operation. */
  commandTimeoutMs: number;
  shutdownGraceSeconds: number;
  balloonStatsIntervalSeconds: number;
  vcpuRefreshSeconds: number;
  startTimeoutMs: number;
  saveTimeoutMs: number;
  emulator?: string;
  /** Directories disks, kernels, initrds and console logs must lie in; empty or absent: anywhere. */
  imageDirs?: readonly string[];
  /** User QEMU runs as; absent: the daemon's own. */
  qemuUser?: QemuUser;
}

export class QemudContext {
  readonly o: SupervisorOptions;
  readonly log: Logger;
  readonly store: Store;
  #nextId = 1;
  #saveKey: Buffer | undefined;

  constructor(o: SupervisorOptions, store: Store) {
    this.o = o;
    this.log = o.logger;
    this.store = store;
  }

  /** The next domain id (as libvirt's: a running domain's number, never reused within one daemon's life). */
  allocateId(): number {
    return this.#nextId++;
  }

  /** An id seen in a runtime record of a QEMU that survived a restart. */
  noteId(id: number): void {
    if (id >= this.#nextId) this.#nextId = id + 1;
  }

  set saveKey(key: Buffer) {
    this.#saveKey = key;
  }

  get saveKey(): Buffer {
    if (this.#saveKey === undefined) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', 'the supervisor was not initialised');
    return this.#saveKey;
  }
}

import type { Logger } from '../util/logger.ts';
import { OPERATIONS, OP_NAMES, type DriverFn, type DriverOpName } from './ops.ts';

/**
 * The table of driver operations, as libvirt's virDriver, derived from the
 * operation table (ops.ts). Every operation is optional: a driver leaves out
 * what it cannot do and the front-end turns the gap into VIRT_ERR_NO_SUPPORT.
 * Domain arguments are a name, UUID or numeric id string; the driver resolves
 * them (VIRT_ERR_NO_DOMAIN when none match).
 */
export type DriverOperations = { [K in DriverOpName]?: DriverFn<K> } & {
  close?(): Promise<void>;
};

export interface Driver extends DriverOperations {
  /** Driver name used in errors and metrics labels: "test", "qemu", "xen". */
  readonly name: string;
}

export type OperationName = DriverOpName;

/** Operations a read-only connection refuses before dispatch. */
export const WRITE_OPERATIONS: ReadonlySet<OperationName> = new Set<OperationName>(OP_NAMES.filter((n): n is OperationName => OPERATIONS[n].driver && OPERATIONS[n].write));

/** What a driver gets when a connection opens. */
export interface OpenContext {
  readonly readOnly: boolean;
  readonly logger: Logger;
  /**
   * Driver settings from the configuration, by config key
   * (e.g. "xen.xenstore-socket", "qemu.runtime-dir"). Drivers apply their own
   * defaults for keys that are absent.
   */
  readonly settings: Readonly<Record<string, string | number | boolean | undefined>>;
}

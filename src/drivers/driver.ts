import type {
  BulkReadOptions,
  BulkStats,
  DomainInfo,
  DomainRef,
  HostInfo,
  ListOptions,
  ReadOptions,
  RestoreOptions,
  ShutdownOptions,
} from './types.ts';
import type { Logger } from '../util/logger.ts';

/**
 * The table of driver operations, as libvirt's virDriver. Every operation is
 * optional: a driver leaves out what it cannot do and the front-end turns the
 * gap into VIRT_ERR_NO_SUPPORT. Domain arguments are a name, UUID or numeric
 * id string; the driver resolves them (VIRT_ERR_NO_DOMAIN when none match).
 */
export interface DriverOperations {
  close?(): Promise<void>;
  version?(opts?: ReadOptions): Promise<string>;
  hostInfo?(opts?: ReadOptions): Promise<HostInfo>;
  listDomains?(opts?: ListOptions): Promise<DomainRef[]>;
  lookupDomain?(key: string, opts?: ReadOptions): Promise<DomainRef>;
  domainInfo?(key: string, opts?: ReadOptions): Promise<DomainInfo>;
  /** All domains' stats in one round trip: the collectors' path. */
  allDomainStats?(opts: BulkReadOptions): Promise<BulkStats>;
  /** Domain definition as the driver stores it (JSON-serialisable). */
  domainDefinition?(key: string, opts?: ReadOptions): Promise<unknown>;

  define?(definition: unknown): Promise<DomainRef>;
  undefine?(key: string): Promise<void>;
  start?(key: string): Promise<void>;
  shutdown?(key: string, opts?: ShutdownOptions): Promise<void>;
  reboot?(key: string): Promise<void>;
  destroy?(key: string): Promise<void>;
  suspend?(key: string): Promise<void>;
  resume?(key: string): Promise<void>;
  save?(key: string, file: string): Promise<void>;
  restore?(file: string, opts?: RestoreOptions): Promise<DomainRef>;
}

export interface Driver extends DriverOperations {
  /** Driver name used in errors and metrics labels: "test", "qemu", "xen". */
  readonly name: string;
}

export type OperationName = Exclude<keyof DriverOperations, 'close'>;

/** Operations a read-only connection refuses before dispatch. */
export const WRITE_OPERATIONS: ReadonlySet<OperationName> = new Set<OperationName>([
  'define',
  'undefine',
  'start',
  'shutdown',
  'reboot',
  'destroy',
  'suspend',
  'resume',
  'save',
  'restore',
]);

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

import type { Driver, DriverOperations, OperationName } from '../drivers/driver.ts';
import { OPERATIONS } from '../drivers/ops.ts';
import { driverFactory, type OpenContext } from '../drivers/registry.ts';
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
} from '../drivers/types.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from './errors.ts';
import { parseUri, type VirtUri } from './uri.ts';

export interface OpenOptions {
  readOnly: boolean;
  logger?: Logger;
  settings?: OpenContext['settings'];
}

type Fn = (...args: never[]) => Promise<unknown>;

/**
 * The front-end: one connection over one driver. Checks read-only policy
 * before any dispatch (never trusting the driver to refuse), turns a
 * missing table entry into VIRT_ERR_NO_SUPPORT, and checks every result with
 * the operation table's result check (drivers read other processes: a
 * malformed reading is VIRT_ERR_RPC, and costs a bulk read only its domain).
 */
export class Connection {
  readonly uri: VirtUri;
  readonly readOnly: boolean;
  readonly #driver: Driver;
  readonly #log: Logger;
  #closed = false;

  constructor(uri: VirtUri, driver: Driver, readOnly: boolean, logger: Logger = silentLogger) {
    this.uri = uri;
    this.#driver = driver;
    this.readOnly = readOnly;
    this.#log = logger;
  }

  get driverName(): string {
    return this.#driver.name;
  }

  /** Whether the driver implements an operation (without calling it). */
  supports(op: OperationName): boolean {
    return typeof this.#driver[op] === 'function';
  }

  async #call<K extends OperationName>(op: K, ...args: Parameters<NonNullable<DriverOperations[K]>>): Promise<Awaited<ReturnType<NonNullable<DriverOperations[K]>>>> {
    if (this.#closed) throw new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${this.uri.text} is closed`);
    const spec = OPERATIONS[op];
    if (this.readOnly && spec.write) {
      throw new VirtError('VIRT_ERR_OPERATION_DENIED', `operation ${op} is not allowed on a read-only connection to ${this.uri.text}`, {
        driver: this.#driver.name,
      });
    }
    const fn: Fn | undefined = this.#driver[op];
    if (typeof fn !== 'function') {
      throw new VirtError('VIRT_ERR_NO_SUPPORT', `operation ${op} is not supported by driver ${this.#driver.name}`, {
        driver: this.#driver.name,
      });
    }
    const started = performance.now();
    try {
      const raw: unknown = await fn.apply(this.#driver, args as unknown as never[]);
      const check = spec.result as (raw: unknown, peer: string) => Awaited<ReturnType<NonNullable<DriverOperations[K]>>>;
      const result = check(raw, `driver ${this.#driver.name}`);
      this.#log.debug('driver call', { op, driver: this.#driver.name, ms: Math.round(performance.now() - started) });
      return result;
    } catch (err) {
      const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
      this.#log.debug('driver call failed', { op, driver: this.#driver.name, ms: Math.round(performance.now() - started), code: e.code });
      throw e;
    }
  }

  version(opts?: ReadOptions): Promise<string> { return this.#call('version', opts); }
  hostInfo(opts?: ReadOptions): Promise<HostInfo> { return this.#call('hostInfo', opts); }
  listDomains(opts?: ListOptions): Promise<DomainRef[]> { return this.#call('listDomains', opts); }
  lookupDomain(key: string, opts?: ReadOptions): Promise<DomainRef> { return this.#call('lookupDomain', key, opts); }
  domainInfo(key: string, opts?: ReadOptions): Promise<DomainInfo> { return this.#call('domainInfo', key, opts); }
  /** Checked at this boundary: a malformed entry costs its domain, never the collection. */
  allDomainStats(opts: BulkReadOptions): Promise<BulkStats> { return this.#call('allDomainStats', opts); }
  domainDefinition(key: string, opts?: ReadOptions): Promise<unknown> { return this.#call('domainDefinition', key, opts); }

  define(definition: unknown): Promise<DomainRef> { return this.#call('define', definition); }
  undefine(key: string): Promise<void> { return this.#call('undefine', key); }
  start(key: string): Promise<void> { return this.#call('start', key); }
  shutdown(key: string, opts?: ShutdownOptions): Promise<void> { return this.#call('shutdown', key, opts); }
  reboot(key: string): Promise<void> { return this.#call('reboot', key); }
  destroy(key: string): Promise<void> { return this.#call('destroy', key); }
  suspend(key: string): Promise<void> { return this.#call('suspend', key); }
  resume(key: string): Promise<void> { return this.#call('resume', key); }
  save(key: string, file: string): Promise<void> { return this.#call('save', key, file); }
  restore(file: string, opts?: RestoreOptions): Promise<DomainRef> { return opts === undefined ? this.#call('restore', file) : this.#call('restore', file, opts); }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#driver.close?.();
  }
}

/** Wraps an already-built driver (tests, embedding). */
export function connectionFor(uri: VirtUri, driver: Driver, readOnly: boolean): Connection {
  return new Connection(uri, driver, readOnly);
}

export async function open(uriText: string, options: OpenOptions): Promise<Connection> {
  const uri = parseUri(uriText);
  const factory = await driverFactory(uri.scheme);
  const ctx: OpenContext = {
    readOnly: options.readOnly,
    logger: (options.logger ?? silentLogger).child({ driver: uri.scheme }),
    settings: options.settings ?? {},
  };
  let driver: Driver;
  try {
    driver = await factory(uri, ctx);
  } catch (err) {
    throw toVirtError(err, 'VIRT_ERR_NO_CONNECT');
  }
  return new Connection(uri, driver, options.readOnly, ctx.logger);
}

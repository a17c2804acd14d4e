import type { Logger } from '../util/logger.ts';
import type { DriverScheme, VirtUri } from '../virt/uri.ts';
import type { Driver } from './driver.ts';

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

export type DriverFactory = (uri: VirtUri, ctx: OpenContext) => Promise<Driver>;

// Loaded lazily so that, e.g., a test-driver exporter never loads the Xen code.
const FACTORIES: Record<DriverScheme, () => Promise<DriverFactory>> = {
  test: async () => (await import('./test/driver.ts')).openTestDriver,
  qemu: async () => (await import('./qemu.ts')).openQemuDriver,
  xen: async () => (await import('./xen/index.ts')).openXenDriver,
  libvirt: async () => (await import('./libvirt/driver.ts')).openLibvirtDriver,
};

export async function driverFactory(scheme: DriverScheme): Promise<DriverFactory> {
  return FACTORIES[scheme]();
}

import type { DriverScheme, VirtUri } from '../virt/uri.ts';
import type { Driver, OpenContext } from './driver.ts';


export type { OpenContext };

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

import { VirtError } from '../virt/errors.ts';
import type { VirtUri } from '../virt/uri.ts';
import type { Driver } from './driver.ts';
import type { OpenContext } from './registry.ts';

// Placeholder until the QEMU issue lands: the URI is recognised, opening says why it fails.
export function openQemuDriver(uri: VirtUri, _ctx: OpenContext): Promise<Driver> {
  return Promise.reject(new VirtError('VIRT_ERR_NO_CONNECT', `the qemu driver is not available yet (${uri.text})`));
}

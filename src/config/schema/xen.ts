import type { SchemaFragment } from './types.ts';

/** Settings of the xen area; keys are reached as settings['xen.KEY'] by the driver/server. */
export const xenSchema: SchemaFragment = {
  xen: {
    // virt-proxy (native helper) settings, used by the hypervisor and proxy sub-drivers.
    'proxy-binary': {
      doc: 'Path of the virt-proxy helper run as a child (--stdio) when the exporter is root; relative paths are taken from the project directory.',
      format: String,
      default: 'native/build/virt-proxy',
    },
    'proxy-socket': {
      doc: 'Unix socket of a virt-proxy daemon (virt-proxy --socket), used when the exporter is not root.',
      format: String,
      default: '/run/virt-exporter/virt-proxy.sock',
    },
    xenctrl: {
      doc: 'Xen control library virt-proxy loads at run time (passed as --xenctrl); empty means the system libxenctrl.',
      format: String,
      default: '',
    },
    'proxy-timeout-ms': {
      doc: 'Deadline in milliseconds for one virt-proxy request (and for starting or connecting to it).',
      format: 'nat',
      default: 5000,
    },
  },
};

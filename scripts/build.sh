#!/bin/sh
# Compiles src/ to JavaScript under build/ (npm install runs this). The
# executables in bin/ run the compiled copy while it is newer than every
# source file, and the TypeScript sources (type stripping) otherwise: the
# compiled copy only saves start-up time and memory (about 25 MiB).
cd "$(dirname "$0")/.." || exit 0
tsc=node_modules/.bin/tsc
if [ ! -x "$tsc" ]; then
  echo "virt-exporter: TypeScript is not installed (npm ci --omit=dev?); bin/ will run the sources directly"
  exit 0
fi
rm -rf build.tmp
if ! "$tsc" -p tsconfig.build.json; then
  rm -rf build.tmp
  echo "virt-exporter: compiling to build/ failed; bin/ will run the sources directly" >&2
  exit 0
fi
date > build.tmp/.stamp
# Swap in whole: a process starting meanwhile sees the old copy, none, or the new one.
rm -rf build.old
[ -d build ] && mv build build.old
mv build.tmp build
rm -rf build.old

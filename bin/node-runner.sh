# Sourced by the executables in bin/: runs an entry point on the project's own
# Node 22 (the `node` npm dependency), whatever node is on PATH. It runs the
# compiled copy under build/ (made by npm install, scripts/build.sh) while that
# is newer than every source file, else the TypeScript sources directly
# (Node 22.18+ strips types), so an edit never runs stale code.
run_entry() {
  entry=$1; shift
  self=$(readlink -f "$0")
  root=$(cd "$(dirname "$self")/.." && pwd)
  node="$root/node_modules/.bin/node"
  if [ ! -x "$node" ]; then
    if command -v node >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)'; then
      node=node
    else
      echo "$(basename "$self"): Node 22.18+ not found; run 'npm ci' in $root first (it installs Node 22 into node_modules)" >&2
      exit 127
    fi
  fi
  target="$root/$entry"
  compiled="$root/build/${entry%.ts}.js"
  if [ -f "$compiled" ] && [ -f "$root/build/.stamp" ] && [ -z "$(find "$root/src" -name '*.ts' -newer "$root/build/.stamp" -print 2>/dev/null | head -n 1)" ]; then
    target=$compiled
  fi
  # A small young generation keeps peak RSS down on large scrapes at no measured cost in latency.
  # The old generation may grow by half between full collections (V8 lets a cheap-to-collect heap
  # grow up to 4x): a scrape's garbage is then collected before it doubles the process. Measured
  # (docs/benchmarks.md): peak RSS at 1,000 test-host domains 152 -> 114 MiB, 500 Xend domains
  # 138 -> 108 MiB, for about a third more CPU per scrape at those sizes.
  exec "$node" --disable-warning=ExperimentalWarning --max-semi-space-size=4 --heap-growing-percent=50 "$target" "$@"
}

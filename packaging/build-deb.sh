#!/bin/sh
# Builds the Debian package from this tree's one build (npm ci: Node 22 in
# node_modules, build/ compiled, native/build/virt-proxy), with dpkg-deb:
#   packaging/build-deb.sh OUTDIR    -> prints the path of the .deb
# Installs: /usr/lib/virt-exporter (the code, its production node_modules and
# its own Node 22), /usr/bin/{virt-exporter,virtctl,virt-qemud}, the systemd
# units, /etc/virt-exporter/virt-exporter.yaml and /etc/default/virt-exporter
# (conffiles), docs; postinst adds the virt-exporter system user and group.
set -eu
out=${1:?usage: build-deb.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cd "$top"
# The one build: recompile build/ if any source is newer than it.
if [ ! -f build/.stamp ] || [ -n "$(find src -name '*.ts' -newer build/.stamp -print | head -n 1)" ]; then sh scripts/build.sh >&2; fi
for f in node_modules/.bin/node build/.stamp native/build/virt-proxy; do
  [ -e "$f" ] || { echo "build-deb: $f is missing; run npm ci first" >&2; exit 1; }
done
version=$(node_modules/.bin/node -p 'require("./package.json").version')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/virt-exporter-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
lib=$stage/usr/lib/virt-exporter
mkdir -p "$lib/native/build" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/virt-exporter" "$stage/etc/default" "$stage/usr/share/doc/virt-exporter" "$stage/DEBIAN"
cp -a package.json package-lock.json bin build "$lib/"
cp native/build/virt-proxy "$lib/native/build/"
printf '{"version":"%s","revision":"%s","branch":"%s"}\n' "$version" "$revision" "$branch" > "$lib/build-info.json"
# Production dependencies only (the Node 22 binary is one: the `node` package).
cp -a node_modules "$lib/"
(cd "$lib" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) || { echo "build-deb: npm prune failed" >&2; exit 1; }
for b in virt-exporter virtctl virt-qemud; do ln -s "../lib/virt-exporter/bin/$b" "$stage/usr/bin/$b"; done
cp packaging/systemd/*.service packaging/systemd/*.socket "$stage/lib/systemd/system/"
cp packaging/debian/virt-exporter.yaml "$stage/etc/virt-exporter/virt-exporter.yaml"
cp packaging/debian/default "$stage/etc/default/virt-exporter"
cp README.md "$stage/usr/share/doc/virt-exporter/"
for d in docs/running-on-a-host.md docs/running-in-a-container.md docs/configuration.md docs/metrics.md docs/errors.md; do [ -f "$d" ] && cp "$d" "$stage/usr/share/doc/virt-exporter/"; done
size=$(du -sk "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control > "$stage/DEBIAN/control"
cp packaging/debian/conffiles packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/virt-exporter_${version}_${arch}.deb"
# gzip -1: the package is mostly the Node binary; fast beats small here.
dpkg-deb --root-owner-group -Zgzip -z1 --build "$stage" "$deb" >/dev/null
echo "$deb"

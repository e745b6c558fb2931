#!/usr/bin/env bash
# Seed localhost:5000/debian:bookworm, the multi-arch Debian minimal base the main example (a Flask
# app) builds FROM. No registry on the internet is reachable here, so each platform's root
# filesystem is made by mmdebstrap from Debian's mirror (foreign architectures run their
# maintainer scripts through the registered QEMU handlers) and pushed by `crossbuild seed`.
# The tarballs are kept in a host-wide cache, so later runs and other clones reuse them; a tag
# already in the registry is left alone.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="${CROSSBUILD_STATE_DIR:-$root/.cache}"
cache="${CROSSBUILD_ROOTFS_CACHE:-/var/cache/crossbuild/rootfs}"
image="${CROSSBUILD_DEBIAN_IMAGE:-localhost:5000/debian:bookworm}"
mirror="${CROSSBUILD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
mkdir -p "$cache" "$state/logs"

log() { printf '[seed-debian] %s\n' "$*"; }

# Debian arch → OCI platform.
declare -A platforms=([amd64]=linux/amd64 [armhf]=linux/arm/v7 [arm64]=linux/arm64)
order=(amd64 armhf arm64)

registry="${image%%/*}"
repo_tag="${image#*/}"
if curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
  "http://$registry/v2/${repo_tag%%:*}/manifests/${repo_tag##*:}" 2>/dev/null; then
  log "$image is already in the registry"
  exit 0
fi

pids=()
for a in "${order[@]}"; do
  tar="$cache/debian-$suite-$a.tar"
  [ -f "$tar" ] && continue
  rm -rf "$tar" "$cache/debian-$suite-$a.partial.tar"
  log "mmdebstrap $suite $a (log: $state/logs/mmdebstrap-$a.log)"
  # The .tar ending makes mmdebstrap write a tarball (owners, modes and device nodes kept).
  # Docs, man pages and translations are dropped (as Docker's official images do with their
  # slim variants); apt and its sources.list stay, so RUN apt-get install works.
  mmdebstrap --variant=minbase --architectures="$a" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "$suite" "$cache/debian-$suite-$a.partial.tar" "$mirror" >"$state/logs/mmdebstrap-$a.log" 2>&1 &
  pids+=("$!:$a")
done
failed=0
for p in "${pids[@]}"; do
  a="${p#*:}"
  if wait "${p%%:*}"; then
    mv "$cache/debian-$suite-$a.partial.tar" "$cache/debian-$suite-$a.tar"
  else
    tail -20 "$state/logs/mmdebstrap-$a.log" >&2
    rm -f "$cache/debian-$suite-$a.partial.tar"
    failed=1
  fi
done
[ "$failed" = 0 ] || { echo "seed-debian: mmdebstrap failed" >&2; exit 1; }

args=()
for a in "${order[@]}"; do args+=(--rootfs "${platforms[$a]}=$cache/debian-$suite-$a.tar"); done
node "$root/bin/crossbuild.js" seed --image "$image" "${args[@]}" --cmd bash

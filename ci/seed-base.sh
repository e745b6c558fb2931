#!/usr/bin/env bash
# Seed localhost:5000/busybox:latest, the multi-arch base image the example and tests build FROM.
# No registry on the internet is reachable here, so it is made from Debian's busybox-static for
# each architecture and pushed by `crossbuild seed`, which writes each config's os/architecture/
# variant itself and joins the images in a manifest list.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="${CROSSBUILD_STATE_DIR:-$root/.cache}"
image="${CROSSBUILD_BASE_IMAGE:-localhost:5000/busybox:latest}"
work="$state/seed"
mkdir -p "$work/debs"

# Debian arch → OCI platform.
declare -A platforms=(
  [amd64]=linux/amd64
  [i386]=linux/386
  [armhf]=linux/arm/v7
  # armel is ARMv5TE soft-float: it runs on ARMv6 (Raspberry Pi Zero/1) and is seeded as arm/v6.
  [armel]=linux/arm/v6
  [arm64]=linux/arm64
  [ppc64el]=linux/ppc64le
  [s390x]=linux/s390x
)
order=(amd64 armhf armel arm64 i386 ppc64el s390x)

have_all=1
for a in "${!platforms[@]}"; do
  compgen -G "$work/debs/busybox-static_*_$a.deb" >/dev/null || have_all=0
done
if [ "$have_all" = 0 ]; then
  added=0
  for a in "${!platforms[@]}"; do
    [ "$a" = "$(dpkg --print-architecture)" ] && continue
    if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
      dpkg --add-architecture "$a"
      added=1
    fi
  done
  if [ "$added" = 1 ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    # Foreign-arch indexes are missing for some suites on some mirrors: warn, don't fail.
    apt-get update -q >"$state/logs/apt-update-seed.log" 2>&1 || echo "[seed] apt-get update reported errors (see $state/logs/apt-update-seed.log)"
  fi
  pkgs=()
  for a in "${!platforms[@]}"; do pkgs+=("busybox-static:$a"); done
  (cd "$work/debs" && apt-get download -q "${pkgs[@]}" >"$state/logs/apt-download-seed.log" 2>&1) \
    || { tail -20 "$state/logs/apt-download-seed.log" >&2; exit 1; }
fi

host_busybox=""
args=()
for a in "${order[@]}"; do
  debs=("$work/debs/"busybox-static_*_"$a".deb)
  deb="${debs[0]}"
  rootfs="$work/rootfs-$a"
  if [ ! -x "$rootfs/bin/busybox" ]; then
    rm -rf "$rootfs" "$work/x-$a"
    mkdir -p "$work/x-$a" "$rootfs"/{bin,etc,tmp,root,proc,sys,dev,usr/bin,usr/sbin,sbin}
    dpkg-deb -x "$deb" "$work/x-$a"
    cp "$work/x-$a/bin/busybox" "$rootfs/bin/busybox"
    rm -rf "$work/x-$a"
    chmod 1777 "$rootfs/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  fi
  [ "$a" = amd64 ] && host_busybox="$rootfs/bin/busybox"
  args+=(--rootfs "${platforms[$a]}=$rootfs")
done

# Applet links: every busybox build here is the same version, so the host's list holds for all.
for a in "${!platforms[@]}"; do
  rootfs="$work/rootfs-$a"
  [ -e "$rootfs/bin/sh" ] && continue
  while read -r applet; do
    name=$(basename "$applet")
    [ "$name" = busybox ] && continue
    ln -sf /bin/busybox "$rootfs/bin/$name"
  done < <("$host_busybox" --list)
done

node "$root/bin/crossbuild.js" seed --image "$image" "${args[@]}" --cmd sh

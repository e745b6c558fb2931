#!/usr/bin/env bash
# Provision this host for crossbuild: Debian packages, dockerd (no bridge), binfmt_misc, a local
# registry on 127.0.0.1:5000 and the seeded multi-arch base image. Idempotent: safe to run twice.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="${CROSSBUILD_STATE_DIR:-$root/.cache}"
registry_addr="${CROSSBUILD_REGISTRY_ADDR:-127.0.0.1:5000}"
# 0 on hosted CI runners that push to a real registry: no loopback registry, no seeded base.
local_registry="${CROSSBUILD_LOCAL_REGISTRY:-1}"
mkdir -p "$state/logs"

log() { printf '[provision] %s\n' "$*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "provision: must run as root (it installs packages, starts dockerd and mounts binfmt_misc)" >&2
    exit 2
  fi
}
need_root

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    # Some mirrors lack foreign-arch indexes for every suite: warn, don't fail.
    apt-get update -q >"$state/logs/apt-update.log" 2>&1 || log "apt-get update reported errors (see $state/logs/apt-update.log)"
    apt_updated=1
  fi
}

# 1. Packages, only when missing.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
[ "$local_registry" = 0 ] || command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
# xmllint checks that the JUnit XML the test gate writes is well-formed.
command -v xmllint >/dev/null || missing+=(libxml2-utils)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v ssh-agent >/dev/null || missing+=(openssh-client)
# The Debian base of the main example is made by mmdebstrap (arch-test lets it check emulation).
[ "$local_registry" = 0 ] || command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ "$local_registry" = 0 ] || command -v arch-test >/dev/null || missing+=(arch-test)
# The OCI image-spec JSON schemas the tests validate what crossbuild writes against.
[ -e /usr/share/gocode/src/github.com/opencontainers/image-spec/schema/image-index-schema.json ] || missing+=(golang-github-opencontainers-image-spec-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$state/logs/apt-install.log" 2>&1 \
    || { tail -20 "$state/logs/apt-install.log" >&2; exit 1; }
fi

# 2. dockerd, without a bridge network or iptables rules.
docker_cli=$(command -v docker)
# A dockerd still shutting down holds its pid file: wait for it to go (or to answer) first. Only
# while that pid is this host's dockerd (not an engine of ci/engines.sh, not another process that
# was given the pid after a restart): otherwise the file is stale, and dockerd would refuse it.
pidfile=/var/run/docker.pid
host_dockerd=$(readlink -f "$(command -v dockerd)")
host_pid() { [ -s "$pidfile" ] && [ "$(readlink -f "/proc/$(cat "$pidfile")/exe" 2>/dev/null)" = "$host_dockerd" ]; }
for _ in $(seq 1 60); do
  "$docker_cli" info >/dev/null 2>&1 && break
  host_pid || break
  sleep 0.5
done
if ! "$docker_cli" info >/dev/null 2>&1; then
  host_pid || rm -f "$pidfile"
  log "starting dockerd --bridge=none --iptables=false"
  setsid nohup dockerd --bridge=none --iptables=false >"$state/logs/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    "$docker_cli" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$docker_cli" info >/dev/null 2>&1 || { tail -20 "$state/logs/dockerd.log" >&2; echo "provision: dockerd did not start" >&2; exit 1; }
fi
log "docker engine $("$docker_cli" version --format '{{.Server.Version}}')"

# 3. binfmt_misc; handlers themselves are crossbuild's job (crossbuild binfmt install).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  log "mounting binfmt_misc"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi

# 4. Local registry on loopback, data in the git-ignored state folder.
if [ "$local_registry" != 0 ] && ! curl -fsS -o /dev/null "http://$registry_addr/v2/" 2>/dev/null; then
  log "starting docker-registry on $registry_addr"
  mkdir -p "$state/registry"
  cat >"$state/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: $registry_addr
YML
  setsid nohup docker-registry serve "$state/registry.yml" >"$state/logs/registry.log" 2>&1 </dev/null &
  for _ in $(seq 1 40); do
    curl -fsS -o /dev/null "http://$registry_addr/v2/" 2>/dev/null && break
    sleep 0.25
  done
  curl -fsS -o /dev/null "http://$registry_addr/v2/" || { tail -20 "$state/logs/registry.log" >&2; exit 1; }
fi
[ "$local_registry" = 0 ] || log "registry answers on $registry_addr"

# 5. Node dependencies and the build, so the seed can use crossbuild itself.
cd "$root"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >"$state/logs/npm-ci.log" 2>&1 || { tail -20 "$state/logs/npm-ci.log" >&2; exit 1; }
fi
npm run -s build

# 6. QEMU handlers for every platform this host has an emulator for (crossbuild run registers what
# it needs too; mmdebstrap, tests and `docker run --platform` by hand need them from the start).
node "$root/bin/crossbuild.js" binfmt install | sed 's/^/[provision] binfmt /'

# 7. Current engines beside the host's 20.10 (Docker 26.1 and 28.5 on both image stores), each on
# its own socket, and cosign: what users run, and what the tests run on (ci/engines.sh).
if [ "${CROSSBUILD_ENGINES:-1}" != 0 ]; then
  bash "$root/ci/engines.sh" up 2>&1 | sed 's/^\[engines\]/[provision] engines:/'
  bash "$root/ci/engines.sh" cosign >/dev/null
  # Node 24 (forky's) beside the host's Node 20, for `npm test`'s last step (ci/node24.sh).
  bash "$root/ci/node24.sh" setup >/dev/null
fi

# 8. The multi-arch base images: busybox (small, for tests) and Debian (the Flask example's).
if [ "$local_registry" != 0 ]; then
  bash "$root/ci/seed-base.sh"
  bash "$root/ci/seed-debian.sh"
fi

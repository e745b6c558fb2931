#!/usr/bin/env bash
# Current Docker engines beside the host's Debian-12 docker.io 20.10, from Debian's own packages,
# each dockerd on its own socket, data root and exec root (nothing installed, the host's apt and
# dpkg state untouched):
#
#   bash ci/engines.sh up [NAME...]     # default: docker-26 docker-28 docker-28c
#   bash ci/engines.sh down [NAME...]
#   bash ci/engines.sh env NAME         # export lines for that engine (or `host`): eval "$(bash ci/engines.sh env docker-28)"
#   bash ci/engines.sh cosign           # unpacks forky's cosign, prints its path
#
#   docker-26   trixie docker.io 26.1, buildx 0.13, containerd 1.7, overlay2 image store
#   docker-28   forky  docker.io 28.5, buildx 0.29, containerd 2.1, overlay2 image store
#   docker-28c  the same forky binaries with the containerd image store (containerd-snapshotter)
#
# The binaries need glibc >= 2.34 only (Debian 12 has 2.36); runc, iptables and tini come from the
# host (docker.io 20.10's dependencies).
set -euo pipefail

cache=/var/cache/crossbuild/engines # downloads, unpacked suites, per-engine config and logs
run=/run/crossbuild                 # sockets, pid files, exec roots
lib=/var/lib/crossbuild             # data roots (images, build cache)
all_engines=(docker-26 docker-28 docker-28c)
engine_pkgs=(docker.io docker-cli docker-buildx containerd)

log() { printf '[engines] %s\n' "$*" >&2; }
die() { printf 'engines: %s\n' "$*" >&2; exit 1; }

suite_of() {
  case "$1" in
    docker-26) echo trixie ;;
    docker-28 | docker-28c) echo forky ;;
    *) die "unknown engine '$1' (known: ${all_engines[*]})" ;;
  esac
}

# A private apt configuration per suite: its own sources, lists and cache, so `update` and
# `download` never touch (or wait for the lock of) the host's apt, which provision.sh may be using.
apt_private() {
  local suite=$1; shift
  local d=$cache/apt-$suite
  apt-get -q \
    -o Dir::State="$d/state" -o Dir::State::status=/dev/null \
    -o Dir::Cache="$d/cache" \
    -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts="$d/empty" \
    -o Dir::Etc::TrustedParts="$d/empty" \
    -o APT::Architectures::="$(dpkg --print-architecture)" -o Acquire::Languages=none \
    "$@"
}

# unpack SUITE DIR PKG...: download the named packages only (no dependencies) from SUITE and
# extract them into DIR/root. DIR/versions, written last, marks a complete unpack (and pins what
# was unpacked: delete it to take newer packages from Debian).
unpack() {
  local suite=$1 dir=$2; shift 2
  local want="$suite $*"
  if [ -s "$dir/versions" ] && [ "$(head -1 "$dir/versions")" = "$want" ]; then return; fi
  local d=$cache/apt-$suite
  mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/empty" "$dir/debs"
  # Debian 12's debian-archive-keyring already holds the bookworm and trixie archive keys, which
  # sign trixie's and forky's Release files: no newer keyring needed.
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$d/sources.list"
  log "apt update ($suite, private state in $d)"
  apt_private "$suite" update >"$d/update.log" 2>&1 || { tail -20 "$d/update.log" >&2; die "apt-get update failed for $suite"; }
  rm -f "$dir/debs"/*.deb
  log "downloading $* from $suite"
  (cd "$dir/debs" && apt_private "$suite" download "$@") >"$d/download.log" 2>&1 \
    || { tail -20 "$d/download.log" >&2; die "apt-get download failed for $suite"; }
  rm -rf "$dir/root" "$dir/versions"
  mkdir -p "$dir/root"
  local deb
  for deb in "$dir/debs"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  { echo "$want"; for deb in "$dir/debs"/*.deb; do dpkg-deb -W --showformat="\${Package} \${Version}\n" "$deb"; done; } >"$dir/versions.tmp"
  mv "$dir/versions.tmp" "$dir/versions"
}

sock() { echo "$run/$1.sock"; }
suite_root() { echo "$cache/$(suite_of "$1")/root"; }
answers() { DOCKER_HOST="unix://$(sock "$1")" "$(suite_root "$1")/usr/bin/docker" info >/dev/null 2>&1; }

# Engine config: daemon.json (image store) and a DOCKER_CONFIG whose cliPluginsExtraDirs points at
# the suite's buildx (Debian's docker-buildx ships it in /usr/libexec/docker/cli-plugins).
configure() {
  local name=$1 root snap=false
  root=$(suite_root "$name")
  [ "$name" = docker-28c ] && snap=true
  mkdir -p "$cache/$name/docker-config"
  cat >"$cache/$name/daemon.json" <<JSON
{
  "features": {"containerd-snapshotter": $snap}
}
JSON
  cat >"$cache/$name/docker-config/config.json" <<JSON
{
  "cliPluginsExtraDirs": ["$root/usr/libexec/docker/cli-plugins"]
}
JSON
}

# The pid in an engine's pid file, printed only while that process is still this engine's dockerd
# (its command line names the pid file): after a restart the file can name a pid some unrelated
# process has since been given, which must be neither waited for nor signalled.
engine_pid() {
  local pidfile=$run/$1.pid pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  grep -qaF -- "$pidfile" "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s' "$pid"
}

# A dockerd still shutting down holds its pid file (and data root): wait for it to go first.
wait_gone() {
  for _ in $(seq 1 120); do
    engine_pid "$1" >/dev/null || return 0
    sleep 0.5
  done
  return 1
}

up_one() {
  local name=$1 suite root pid
  suite=$(suite_of "$name")
  unpack "$suite" "$cache/$suite" "${engine_pkgs[@]}"
  configure "$name"
  answers "$name" && { log "$name answers on $(sock "$name")"; return; }
  wait_gone "$name" || die "$name: dockerd $(engine_pid "$name") neither answers nor exits"
  rm -f "$run/$name.pid" # not this engine's any more (dockerd refuses a pid file whose pid runs)
  root=$(suite_root "$name")
  mkdir -p "$run" "$lib/$name"
  # A containerd pid file left from before a restart names a pid some other process may have now:
  # dockerd would take that process for its containerd and give up after 15 s. Kept only while
  # the pid is still this engine's own containerd.
  local cpid=$run/$name-exec/containerd/containerd.pid
  if [ -s "$cpid" ] && ! grep -qaF "$run/$name-exec/containerd" "/proc/$(cat "$cpid")/cmdline" 2>/dev/null; then
    rm -f "$cpid"
  fi
  log "starting $name"
  # The suite's usr/bin and usr/sbin first: dockerd starts the containerd (and containerd the
  # shim) it finds on PATH, so they must be the suite's, not the host's 1.6; runc and docker-init
  # (tini) then come from the host. Its managed containerd takes root and state from data-root
  # and exec-root, so nothing is shared with the host's dockerd (/var/run/docker). 28 sets up
  # ip6tables chains even with --iptables=false: --ip6tables=false too.
  PATH="$root/usr/bin:$root/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid nohup "$root/usr/sbin/dockerd" \
    --host "unix://$(sock "$name")" --data-root "$lib/$name" --exec-root "$run/$name-exec" \
    --pidfile "$run/$name.pid" --config-file "$cache/$name/daemon.json" \
    --bridge=none --iptables=false --ip6tables=false \
    >"$cache/$name.log" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 1 120); do
    answers "$name" && break
    kill -0 "$pid" 2>/dev/null || break # exited: no use waiting
    sleep 0.5
  done
  answers "$name" || { tail -30 "$cache/$name.log" >&2; die "$name did not answer within 60 s (log: $cache/$name.log)"; }
  log "$name $(DOCKER_HOST="unix://$(sock "$name")" "$root/usr/bin/docker" version --format '{{.Server.Version}}') on $(sock "$name")"
}

down_one() {
  local name=$1 pid
  suite_of "$name" >/dev/null
  if pid=$(engine_pid "$name"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid"
    wait_gone "$name" || die "$name: dockerd $pid did not exit within 60 s"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up | down)
    [ "$(id -u)" = 0 ] || die "must run as root (it starts dockerd)"
    [ $# -gt 0 ] || set -- "${all_engines[@]}"
    for name in "$@"; do "${cmd}_one" "$name"; done
    ;;
  env)
    [ $# = 1 ] || die "usage: engines.sh env NAME"
    if [ "$1" = host ]; then
      # The host's own engine (Debian 12's 20.10) and its pre-23 CLI, for tests that pin it.
      printf 'export DOCKER_HOST=%q\n' unix:///var/run/docker.sock
      printf 'export DOCKER_CONFIG=%q\n' "${HOME:-/root}/.docker"
      printf 'export CROSSBUILD_DOCKER=%q\n' /usr/bin/docker
      printf 'export CROSSBUILD_ENGINE=%q\n' host
      exit 0
    fi
    suite_of "$1" >/dev/null
    printf 'export DOCKER_HOST=%q\n' "unix://$(sock "$1")"
    printf 'export DOCKER_CONFIG=%q\n' "$cache/$1/docker-config"
    printf 'export CROSSBUILD_DOCKER=%q\n' "$(suite_root "$1")/usr/bin/docker"
    printf 'export CROSSBUILD_ENGINE=%q\n' "$1"
    ;;
  cosign)
    unpack forky "$cache/cosign" cosign
    echo "$cache/cosign/root/usr/bin/cosign"
    ;;
  *)
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
    ;;
esac

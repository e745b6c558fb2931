#!/usr/bin/env bash
# Node 24 beside the host's Node 20: Debian forky's nodejs and every library it needs (its own
# glibc too) unpacked into /var/cache/crossbuild/node24/root (nothing installed, the host's apt and
# dpkg state untouched), for running the suite on it:
#
#   bash ci/node24.sh [setup]     # unpack and check it (idempotent), print the bin folder
#   bash ci/node24.sh env         # export line: eval "$(bash ci/node24.sh env)" puts node 24 first on PATH
#   bash ci/node24.sh test        # setup, then from the repository root: the unit suite and one
#                                 # `crossbuild run` of example/busybox on node 24, with a summary
#
# forky's node needs glibc 2.43 (Debian 12 has 2.36), so it must run under the root's own dynamic
# loader. Invoking that loader explicitly (ld-linux-x86-64.so.2 --library-path … node) runs node,
# but then process.execPath is the loader, and every child_process.fork (vitest's forks pool)
# fails with "invalid ELF header". So the unpacked node is patched instead (patchelf, also
# forky's): its ELF interpreter is the root's loader and its DT_RPATH the root's library folder,
# which is searched for every library the process loads. Nothing is put in the environment (no
# LD_LIBRARY_PATH), so what node spawns (docker, skopeo, cosign: host binaries) runs on the host's
# loader and libraries; `setup` checks both. Debian's libnode also reads three
# JavaScript builtins at start from absolute paths under /usr/share/nodejs, which the host lacks:
# those strings are rewritten (same length, NUL-padded) to links in this folder. The paths baked
# into both files make the root unmovable.
set -euo pipefail

base=/var/cache/crossbuild/node24 # private apt state, downloads, the unpacked root, bin/node, logs
suite=forky
pkgs=(nodejs patchelf) # patchelf only for the patch; nodejs brings libnode, libuv, ICU, libc6, …
root=$base/root
libdir=$root/usr/lib/x86_64-linux-gnu
bin=$base/bin
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[node24] %s\n' "$*" >&2; }
die() { printf 'node24: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# A private apt configuration, as ci/engines.sh keeps per suite, but in a folder of its own: that
# one is rewritten and updated whenever engines.sh unpacks. The status file is an empty private
# one, so `install --download-only` resolves the whole dependency closure as on an empty system
# (libc6 included) and takes its dpkg lock in $d, never the host's.
apt_private() {
  local d=$base/apt
  apt-get -q \
    -o Dir::State="$d/state" -o Dir::State::status="$d/status" \
    -o Dir::Cache="$d/cache" \
    -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts="$d/empty" \
    -o Dir::Etc::TrustedParts="$d/empty" \
    -o APT::Architectures::="$(dpkg --print-architecture)" -o Acquire::Languages=none \
    "$@"
}

# The three externalized builtins: the path libnode reads, and the link (a path no longer than
# that) it reads instead.
builtins=(
  "/usr/share/nodejs/acorn/dist/acorn.js $base/acorn.js"
  "/usr/share/nodejs/acorn-walk/dist/walk.js $base/walk.js"
  "/usr/share/nodejs/undici/undici-fetch.js $base/undici.js"
)

patch_root() {
  local loader=$libdir/ld-linux-x86-64.so.2 pair from to
  [ -x "$loader" ] || die "no dynamic loader at $loader"
  # patchelf is forky's too (it needs its libstdc++): run it through the loader explicitly.
  "$loader" --library-path "$libdir" "$root/usr/bin/patchelf" \
    --set-interpreter "$loader" --force-rpath --set-rpath "$libdir" "$root/usr/bin/node"
  for pair in "${builtins[@]}"; do
    read -r from to <<<"$pair"
    [ -f "$root$from" ] || die "forky's libnode wants $from, not in the unpacked packages"
    [ ${#to} -le ${#from} ] || die "$to is longer than $from: cannot patch it in"
    ln -sfn "root$from" "$to"
    # Exactly one NUL-delimited copy is the C string libnode opens (the others are inside
    # process.config's text, left as they are).
    FROM=$from TO=$to perl -0777 -pi -e '
      my ($f, $t) = ($ENV{FROM}, $ENV{TO});
      my $n = s/\0\Q$f\E\0/"\0" . $t . ("\0" x (length($f) - length($t) + 1))/ge;
      die "node24: $n copies of $f in libnode (want 1)\n" unless $n == 1;
    ' "$libdir"/libnode.so.*
  done
}

# unpack: download nodejs with its dependency closure from forky and extract it into $root.
# $base/versions, written last, marks a complete unpack and pins it (delete it to take newer
# packages from Debian).
unpack() {
  local want="$suite ${pkgs[*]}" d=$base/apt deb
  if [ -s "$base/versions" ] && [ "$(head -1 "$base/versions")" = "$want" ]; then return; fi
  mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/empty"
  : >"$d/status"
  # Debian 12's debian-archive-keyring signs forky's Release files (as for ci/engines.sh).
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$d/sources.list"
  log "apt update ($suite, private state in $d)"
  apt_private update >"$d/update.log" 2>&1 || { tail -20 "$d/update.log" >&2; die "apt-get update failed for $suite"; }
  # Older downloads would be unpacked too: start from an empty archive folder.
  rm -f "$d/cache/archives"/*.deb
  log "downloading ${pkgs[*]} and their dependencies from $suite"
  apt_private -y --no-install-recommends --download-only install "${pkgs[@]}" >"$d/download.log" 2>&1 \
    || { tail -20 "$d/download.log" >&2; die "apt-get install --download-only failed for $suite"; }
  rm -rf "$root" "$base/versions"
  mkdir -p "$root"
  for deb in "$d/cache/archives"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  patch_root
  mkdir -p "$bin"
  # A link, not a script: no extra process, and argv[0] stays `node`.
  ln -sfn ../root/usr/bin/node "$bin/node"
  { echo "$want"; for deb in "$d/cache/archives"/*.deb; do dpkg-deb -W --showformat="\${Package} \${Version}\n" "$deb"; done; } >"$base/versions.tmp"
  mv "$base/versions.tmp" "$base/versions"
  log "unpacked $(($(wc -l <"$base/versions") - 1)) packages into $root"
}

# The checks: node 24 on the root's glibc, every library it maps from the root, the builtins
# load, fork works (execPath is node itself), and a host binary it spawns maps nothing of the
# root and sees no LD_* variable. Prints one line.
check() {
  ROOT=$root "$bin/node" --expose-internals -e '
    const fs = require("node:fs"), cp = require("node:child_process");
    const root = process.env.ROOT + "/";
    const fail = (m) => { console.error("node24: " + m); process.exit(1); };
    const libs = (maps) => [...new Set(maps.split("\n").map((l) => l.split(/\s+/)[5])
      .filter((p) => p && /\.so(\.|$)/.test(p)))];
    if (process.versions.node.split(".")[0] !== "24") fail("node is " + process.version);
    if (fs.realpathSync(process.execPath) !== fs.realpathSync(root + "usr/bin/node")) fail("execPath is " + process.execPath);
    require("internal/deps/acorn/acorn/dist/acorn");
    require("internal/deps/acorn/acorn-walk/dist/walk");
    if (typeof fetch !== "function") fail("no fetch (undici builtin)");
    const outside = libs(fs.readFileSync("/proc/self/maps", "utf8")).filter((p) => !p.startsWith(root));
    if (outside.length) fail("node maps host libraries: " + outside.join(" "));
    const fork = cp.spawnSync(process.execPath, ["-p", "process.version"], { encoding: "utf8" });
    if (fork.stdout.trim() !== process.version) fail("execPath does not run again: " + fork.stderr);
    const child = cp.execFileSync("cat", ["/proc/self/maps"], { encoding: "utf8" });
    const leaked = libs(child).filter((p) => p.startsWith(root));
    if (leaked.length) fail("a spawned host binary maps " + leaked.join(" "));
    const env = Object.keys(process.env).filter((k) => k.startsWith("LD_"));
    if (env.length) fail("LD_ variables reach children: " + env.join(" "));
    const hostLibc = cp.execFileSync("getconf", ["GNU_LIBC_VERSION"], { encoding: "utf8" }).trim();
    console.log(process.version + " on glibc " + process.report.getReport().header.glibcVersionRuntime +
      " (root); children on the host: " + hostLibc);
  '
}

setup() {
  local t0 fd
  t0=$(now)
  mkdir -p "$base"
  # Two setups at once would unpack into one root: one at a time.
  exec {fd}>"$base/lock"
  flock "$fd"
  unpack
  exec {fd}>&-
  log "$(check) in $(since "$t0") s"
}

# The unit suite and one real busybox run on node 24, from the repository root, each timed.
# Both always run; exit 1 if either failed.
run_tests() {
  local t0 t_unit t_run unit_rc=0 run_rc=0 counts digest="" want="" logs=$base/logs ref version
  local image=localhost:5000/node24-busybox
  t0=$(now)
  setup
  version=$("$bin/node" --version)
  mkdir -p "$logs"
  cd "$repo"
  [ -f node_modules/vitest/vitest.mjs ] || die "no node_modules/vitest in $repo: run npm ci first"
  [ -f dist/cli/main.js ] || die "no dist/ in $repo: run npm run build first"
  # First on PATH too, so a `node` the tests start (test/helpers/env.ts) is node 24 as well.
  export PATH="$bin:$PATH"

  log "unit suite: node $version node_modules/vitest/vitest.mjs run test/unit"
  t_unit=$(now)
  "$bin/node" node_modules/vitest/vitest.mjs run test/unit 2>&1 | tee "$logs/unit.log" || unit_rc=$?
  t_unit=$(since "$t_unit")
  # test/helpers/summary-reporter.ts's closing line: "N passed, N failed[, N skipped]".
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/unit.log" | tail -1 || true)

  log "busybox run: node $version bin/crossbuild.js run --config example/busybox/platforms.json --image $image"
  rm -f "$logs/busybox.iid"
  t_run=$(now)
  "$bin/node" bin/crossbuild.js run --config example/busybox/platforms.json --image "$image" \
    --iidfile "$logs/busybox.iid" 2>&1 | tee "$logs/run.log" || run_rc=$?
  t_run=$(since "$t_run")
  [ -s "$logs/busybox.iid" ] && digest=$(cat "$logs/busybox.iid")
  # The registry must serve that list under the config's tag.
  ref="$image:$(ROOT=$repo "$bin/node" -p 'require(process.env.ROOT + "/example/busybox/platforms.json").tag')"
  want=$(curl -fsSI \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://${image%%/*}/v2/${image#*/}/manifests/${ref##*:}" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p' || true)

  local ok=1
  printf '\n[node24] summary (logs in %s)\n' "$logs"
  printf '  node         %s (%s)\n' "$version" "$(grep '^nodejs ' "$base/versions")"
  if [ "$unit_rc" = 0 ] && [[ $counts =~ ^[0-9]+\ passed,\ 0\ failed ]]; then
    printf '  unit suite   %s in %s s\n' "$counts" "$t_unit"
  else
    ok=0; printf '  unit suite   FAILED (exit %s): %s in %s s\n' "$unit_rc" "${counts:-no summary line}" "$t_unit"
  fi
  if [ "$run_rc" = 0 ] && [ -n "$digest" ] && [ "$digest" = "$want" ]; then
    printf '  busybox run  exit 0 in %s s, %s@%s\n' "$t_run" "$ref" "$digest"
  else
    ok=0; printf '  busybox run  FAILED (exit %s) in %s s, list digest %s, registry has %s\n' \
      "$run_rc" "$t_run" "${digest:-none}" "${want:-none}"
  fi
  printf '  total        %s s\n' "$(since "$t0")"
  [ "$ok" = 1 ]
}

cmd=${1:-setup}
case "$cmd" in
  setup) setup; echo "$bin" ;;
  env)
    setup
    # shellcheck disable=SC2016 # $PATH is for the eval, not for here
    printf 'export PATH=%q:"$PATH"\n' "$bin"
    ;;
  test) run_tests ;;
  *)
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
    ;;
esac

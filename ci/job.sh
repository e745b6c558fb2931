#!/usr/bin/env bash
# The single-runner CI job: provision this host, `crossbuild run` (or `crossbuild verify` of what is
# already published), and publish the reports. GitHub Actions, GitLab CI and .ci/run all call it.
#
#   bash ci/job.sh [run|verify]
#
# Inputs (environment):
#   CROSSBUILD_CONFIG, CROSSBUILD_IMAGE, CROSSBUILD_TAG, CROSSBUILD_PLATFORMS, CROSSBUILD_BUILD_ARGS,
#   CROSSBUILD_TYPE ...      as the flags of `crossbuild run` (flags > environment > platforms.json)
#   CROSSBUILD_CACHE         build cache through the registry: registry (the default here, so a
#                            fresh runner reuses the last run's work) or none
#   REGISTRY_USERNAME, REGISTRY_PASSWORD   registry credentials (the password goes via stdin only)
#   CROSSBUILD_ARTIFACTS     where report.json, summary.md and logs/ go (default ./crossbuild-artifacts)
#   CROSSBUILD_LOCAL_REGISTRY=0   on hosted runners: no loopback registry or seeded base image
#   CROSSBUILD_SKIP_PROVISION=1   the host is already provisioned
# Outputs: the artifacts folder, with outputs.env (`ok=`, `digest=`: GitLab's dotenv report); the
# Markdown summary appended to $GITHUB_STEP_SUMMARY and outputs.env to $GITHUB_OUTPUT when set.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode="${1:-${CROSSBUILD_MODE:-run}}"
artifacts="${CROSSBUILD_ARTIFACTS:-$PWD/crossbuild-artifacts}"
mkdir -p "$artifacts/logs"

if [ "${CROSSBUILD_SKIP_PROVISION:-0}" != 1 ]; then
  bash "$root/ci/provision.sh"
fi

crossbuild() {
  if [ -n "${REGISTRY_USERNAME:-}" ]; then
    printf '%s' "${REGISTRY_PASSWORD:-}" | node "$root/bin/crossbuild.js" "$@" --username "$REGISTRY_USERNAME" --password-stdin
  else
    node "$root/bin/crossbuild.js" "$@"
  fi
}

# A CI runner starts with an empty engine: take the build cache from the registry, per platform.
export CROSSBUILD_CACHE="${CROSSBUILD_CACHE:-registry}"

rc=0
case "$mode" in
  run)
    crossbuild run --report "$artifacts/report.json" --summary "$artifacts/summary.md" --log-dir "$artifacts/logs" || rc=$?
    ;;
  verify)
    config="${CROSSBUILD_CONFIG:-platforms.json}"
    ref="${CROSSBUILD_VERIFY_REF:-}"
    # No ref: the config's image:tag (CROSSBUILD_IMAGE / CROSSBUILD_TAG win), as crossbuild reads it.
    crossbuild verify ${ref:+"$ref"} --config "$config" --report "$artifacts/report.json" --summary "$artifacts/summary.md" || rc=$?
    ;;
  *)
    echo "usage: ci/job.sh [run|verify]" >&2
    exit 2
    ;;
esac

if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$artifacts/summary.md" ]; then
  cat "$artifacts/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
if [ -f "$artifacts/report.json" ]; then
  # shellcheck disable=SC2016 # a JavaScript template literal, not shell
  node -e 'const r=require(process.argv[1]); console.log(`ok=${r.ok}`); const d=r.list?.digest ?? r.digest; if (d) console.log(`digest=${d}`)' "$artifacts/report.json" >"$artifacts/outputs.env"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then cat "$artifacts/outputs.env" >>"$GITHUB_OUTPUT"; fi
fi
echo "crossbuild $mode: exit $rc; reports in $artifacts"
exit "$rc"

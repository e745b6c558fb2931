#!/usr/bin/env bash
# The GitHub action's step (action.yml): maps the INPUT_* variables to `crossbuild verify` flags,
# writes the Markdown summary to $GITHUB_STEP_SUMMARY and `digest`/`result` to $GITHUB_OUTPUT.
# Failures become annotations (crossbuild emits ::error lines under GITHUB_ACTIONS=true).
# Also usable from any CI: set the INPUT_* variables yourself.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/crossbuild-verify-$$"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# Built once per checkout of the action: npm packages only, no image.
if [ ! -f "$root/dist/cli/main.js" ]; then
  (cd "$root" && npm ci --no-audit --no-fund >"$work/npm-ci.log" 2>&1 && npm run -s build) \
    || { tail -20 "$work/npm-ci.log" >&2; echo "::error title=crossbuild::could not install crossbuild's dependencies" >&2; exit 1; }
fi

# An input that may be a file path or the content itself (build-push-action's metadata JSON, a
# PEM key): the path of a file holding it.
as_file() {
  if [ -f "$1" ]; then
    printf '%s' "$1"
  else
    printf '%s\n' "$1" >"$work/$2"
    printf '%s' "$work/$2"
  fi
}

args=(verify)
[ -n "${INPUT_METADATA:-}" ] && args+=(--metadata "$(as_file "$INPUT_METADATA" metadata.json)")
[ -n "${INPUT_REF:-}" ] && args+=("$INPUT_REF")
[ -n "${INPUT_PLATFORMS:-}" ] && args+=(--platform "$INPUT_PLATFORMS")
case "${INPUT_STATIC:-true}" in
  true | '') args+=(--static) ;;
  false) ;;
  *) echo "::error title=crossbuild::input static must be 'true' or 'false', not '${INPUT_STATIC}'" >&2; exit 2 ;;
esac
while IFS= read -r glob; do
  [ -n "$glob" ] && args+=(--allow "$glob")
done <<<"${INPUT_ALLOW:-}"
if [ -n "${INPUT_KEY:-}" ]; then
  args+=(--key "$(as_file "$INPUT_KEY" cosign.pub)")
  [ "${INPUT_REQUIRE_ATTESTATION:-false}" = true ] && args+=(--require-attestation)
fi
report="$work/report.json"
args+=(--report "$report")
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && args+=(--summary "$work/summary.md")

rc=0
if [ -n "${INPUT_REGISTRY_USERNAME:-}" ]; then
  printf '%s' "${INPUT_REGISTRY_PASSWORD:-}" | node "$root/bin/crossbuild.js" "${args[@]}" --username "$INPUT_REGISTRY_USERNAME" --password-stdin || rc=$?
else
  node "$root/bin/crossbuild.js" "${args[@]}" || rc=$?
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$work/summary.md" ]; then cat "$work/summary.md" >>"$GITHUB_STEP_SUMMARY"; fi
# Keep the JSON report where asked (the GitLab template publishes it as an artifact).
if [ -n "${CROSSBUILD_KEEP_REPORT:-}" ] && [ -f "$report" ]; then cp "$report" "$CROSSBUILD_KEEP_REPORT"; fi
result=failed
[ "$rc" = 0 ] && result=passed
digest=""
# shellcheck disable=SC2016 # a JavaScript expression, not shell
[ -f "$report" ] && digest=$(node -e 'console.log(require(process.argv[1]).digest ?? "")' "$report")
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "digest=$digest"; echo "result=$result"; } >>"$GITHUB_OUTPUT"
fi
echo "crossbuild verify: $result${digest:+ ($digest)}"
exit "$rc"

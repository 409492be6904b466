#!/usr/bin/env bash
# Runs the openai SDK's own API-resource tests against the mock of OpenAI's spec that the SDK uses
# (Steady), once directly and once through tollgate (built from this checkout) in front of the same
# mock, and compares the two (scripts/sdk-suite/summarize.ts). See docs/compatibility.md.
#
#   scripts/sdk-suite/run.sh /path/to/openai-node [output-dir]
#
# The openai-node checkout needs its dependencies (`pnpm install`, or `npm install --ignore-scripts`).
# Environment: MOCK_PORT (default 4010), GATEWAY_PORT (default 4011), STEADY (default @stdy/cli@0.22.1,
# the version the SDK's scripts/mock pins), UNKNOWN_MODELS (tollgate's `models.unknown`, default
# pass_through: the tests name models outside the catalogue).
set -euo pipefail

SDK="$(cd "${1:?usage: scripts/sdk-suite/run.sh /path/to/openai-node [output-dir]}" && pwd)"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$(mkdir -p "${2:-$ROOT/test-artifacts/sdk-suite}" && cd "${2:-$ROOT/test-artifacts/sdk-suite}" && pwd)"
MOCK_PORT="${MOCK_PORT:-4010}"
GATEWAY_PORT="${GATEWAY_PORT:-4011}"
STEADY="${STEADY:-@stdy/cli@0.22.1}"
UNKNOWN_MODELS="${UNKNOWN_MODELS:-pass_through}"
SPEC="$SDK/api_reference/openapi.transformed.yml"
VERSION="$(node -p "require('$SDK/package.json').version")"

[[ -f "$SPEC" ]] || { echo "no $SPEC: is $SDK an openai-node checkout?" >&2; exit 2; }
[[ -x "$SDK/node_modules/.bin/jest" ]] || { echo "$SDK has no node_modules: run pnpm install (or npm install --ignore-scripts) there" >&2; exit 2; }

pids=()
cleanup() { # each started in a process group of its own (setsid): stop the group
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_for() { # url, name, log
  for _ in $(seq 1 600); do
    curl --silent --fail "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}

echo "==> the spec's mock ($STEADY) on 127.0.0.1:$MOCK_PORT"
STEADY_BIN="$(cd "$SDK" && npm exec --yes --package="$STEADY" -- sh -c 'command -v steady')"
(cd "$SDK" && exec setsid "$STEADY_BIN" --host 127.0.0.1 -p "$MOCK_PORT" \
  --validator-query-array-format=brackets --validator-form-array-format=brackets \
  --validator-query-object-format=brackets --validator-form-object-format=brackets \
  "$SPEC") >"$OUT/mock.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$MOCK_PORT/_x-steady/health" "the mock" "$OUT/mock.log"

# One tier-5 key with the SDK tests' secret; the mock is the upstream (its paths have no /v1 prefix).
cat >"$OUT/tollgate.yaml" <<EOF
upstream:
  url: http://127.0.0.1:$MOCK_PORT
models:
  unknown: $UNKNOWN_MODELS
keys:
  - id: sdk-suite
    key: My API Key
    tier: tier-5
EOF

echo "==> tollgate on 127.0.0.1:$GATEWAY_PORT"
(cd "$ROOT" && REDIS_URL= TOLLGATE_CONFIG="$OUT/tollgate.yaml" OPENAI_API_KEY=sk-sdk-suite-upstream PORT="$GATEWAY_PORT" HOST=127.0.0.1 LOG_LEVEL=warn \
  exec setsid node --import tsx src/server.ts) >"$OUT/tollgate.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY_PORT/healthz" "tollgate" "$OUT/tollgate.log"

run_suite() { # base url, report name
  echo "==> the SDK's tests/api-resources against $1"
  (cd "$SDK" && TEST_API_BASE_URL="$1" OPENAI_TEST_SUITE=generated ./node_modules/.bin/jest --runInBand tests/api-resources \
    --json --outputFile="$OUT/$2.json") >"$OUT/$2.log" 2>&1 || true
  tail -n 6 "$OUT/$2.log" | grep -E '^Tests:' || { echo "the run did not finish; see $OUT/$2.log" >&2; exit 1; }
}
run_suite "http://127.0.0.1:$MOCK_PORT" direct
run_suite "http://127.0.0.1:$GATEWAY_PORT/v1" through-tollgate

echo "==> compared (also in $OUT/summary.md)"
(cd "$ROOT" && npx tsx scripts/sdk-suite/summarize.ts "$OUT/direct.json" "$OUT/through-tollgate.json" "$VERSION") | tee "$OUT/summary.md"

#!/usr/bin/env bash
# The one-command demo: install, start `fulfillwatch serve` on embedded ClickHouse, and send
# demo traffic (some of it failing) so incidents appear within a minute. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
venv_dir="${FULFILLWATCH_VENV:-.venv}"
otlp_port="${FULFILLWATCH_OTLP_PORT:-4318}"
api_port="${FULFILLWATCH_API_PORT:-8000}"
data_dir="${FULFILLWATCH_DATA_DIR:-.fulfillwatch/demo}"
token="${FULFILLWATCH_API_TOKEN:-$("$venv_dir/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')}"
export FULFILLWATCH_API_TOKEN="$token"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped"
}
trap cleanup INT TERM EXIT

"$venv_dir/bin/fulfillwatch" serve --demo --data-dir "$data_dir" --otlp-port "$otlp_port" --api-port "$api_port" \
  --engine-interval 2 --default-timeout 20 --log-level warning &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "fulfillwatch serve exited" >&2; exit 1; }
  sleep 0.5
done
"$venv_dir/bin/python" examples/traffic/generator.py --endpoint "http://127.0.0.1:$otlp_port" --timeout 20 --rate 2 &
pids+=($!)

cat <<MSG

Fulfillwatch demo is running. Incidents appear within a minute (deadlines are 20 s here).
  API token   $token
  Incidents   curl -s -H "Authorization: Bearer $token" http://127.0.0.1:$api_port/api/incidents | python3 -m json.tool
  Open only   curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/api/incidents?state=open"
  API docs    http://127.0.0.1:$api_port/docs
  Health      http://127.0.0.1:$api_port/healthz
Press Ctrl-C to stop.
MSG
wait "${pids[0]}"

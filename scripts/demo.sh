#!/usr/bin/env bash
# The one-command demo: install (with redis-server for the example shop's Celery broker), then
# `fulfillwatch demo`: serve on embedded ClickHouse, the dashboard, the example shop (web app +
# Celery worker) and Stripe-shaped traffic, some of which fails. Incidents appear within a
# minute; Ctrl-C stops everything. Extra arguments go to `fulfillwatch demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --demo
exec "${FULFILLWATCH_VENV:-.venv}/bin/fulfillwatch" demo "$@"

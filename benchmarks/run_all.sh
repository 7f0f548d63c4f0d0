#!/usr/bin/env bash
# Run every benchmark once; JSON results go to benchmarks/results/ (summarised in docs/BENCHMARKS.md).
#   bash benchmarks/run_all.sh            (about 27 minutes on 2 cores; the detection store of 10 M
#   expectations needs ~3 GiB of disk; with --sizes 10000000,100000000 bench_detection.py adds a
#   100 M store: 26 GiB and ~27 minutes more)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
mkdir -p benchmarks/results
"$python" benchmarks/bench_instrumentation.py --json benchmarks/results/instrumentation.json
"$python" benchmarks/bench_ingest.py --json benchmarks/results/ingest.json
"$python" benchmarks/bench_reprocess.py --json benchmarks/results/reprocess.json
"$python" benchmarks/bench_celery.py --json benchmarks/results/celery.json
"$python" benchmarks/bench_detection.py --json benchmarks/results/detection.json
"$python" benchmarks/bench_listing.py --json benchmarks/results/listing.json
"$python" benchmarks/bench_backlog_tick.py --json benchmarks/results/backlog_tick.json
# (add --tick-store DIR with a store bench_detection.py --keep left, for the tick with reconciliation on)
"$python" benchmarks/bench_reconcile.py --json benchmarks/results/reconcile.json
"$python" benchmarks/bench_dashboard.py --json benchmarks/results/dashboard.json
"$python" benchmarks/bench_robustness.py --json benchmarks/results/robustness.json
"$python" benchmarks/bench_demo.py --json benchmarks/results/demo.json

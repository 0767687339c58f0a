#!/usr/bin/env bash
# Every benchmark the docs quote, one after another (run on a quiet machine, from the repository
# root, after `make services`): outputs and load averages under bench-results/run/, the figures
# `wardwatch bench plan` reads under bench-results/, the chart also at docs/benchmarks.png.
set -euo pipefail
O=bench-results/run; mkdir -p "$O"
W=.venv/bin/wardwatch
{ date; uptime; git log --oneline -1; } > "$O/context.txt"
$W bench detectors --json > bench-results/detectors.json 2> "$O/detectors.err"; uptime >> "$O/context.txt"
$W bench detectors > "$O/detectors.txt" 2>&1; uptime >> "$O/context.txt"
$W bench checkpoint --patients 10000 --seconds 3 --repeat 3 > "$O/checkpoint.txt" 2>&1; uptime >> "$O/context.txt"
$W bench alerts --instances 2 --out bench-results > "$O/alerts.txt" 2>&1; uptime >> "$O/context.txt"
# The same clients read by websockets' own parser, for comparison (bench-results/alerts.json is the run above).
$W bench alerts --client websockets --out "$O/alerts-websockets" > "$O/alerts-websockets.txt" 2>&1; uptime >> "$O/context.txt"
# The same bench on asyncio's own loop instead of uvloop (wardwatch/eventloop.py), for comparison.
WARDWATCH_EVENT_LOOP=asyncio $W bench alerts --out "$O/alerts-asyncio" > "$O/alerts-asyncio.txt" 2>&1; uptime >> "$O/context.txt"
.venv/bin/python scripts/backlog-rounds.py > "$O/backlog-rounds.txt" 2>&1; uptime >> "$O/context.txt"
.venv/bin/python scripts/backlog-fetch.py > "$O/backlog-fetch.txt" 2>&1; uptime >> "$O/context.txt"
$W bench ingest --json > bench-results/ingest.json 2> "$O/ingest.err"; uptime >> "$O/context.txt"
make bench > "$O/pipeline.txt" 2>&1; uptime >> "$O/context.txt"
$W bench plan > "$O/plan.txt" 2>&1
{ date; uptime; } >> "$O/context.txt"

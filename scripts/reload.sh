#!/usr/bin/env bash
# Apply the rendered config to the running services that re-read it without a restart
# (bundle/layers.yaml `reloads` with a signal: Prometheus and Alertmanager). Run after
# render.py succeeded (the Makefile does): an invalid config never gets here.
# Each service gets its signal (SIGHUP), then its own reload metrics must show a new
# successful load; the lifecycle HTTP endpoint stays off. Then every service that needs
# a recreate to see its changes (a file it reads at start, a secret) is named.
#   scripts/reload.sh [SERVICE...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
.venv/bin/python -m bundle.drift reload "$@" || status=1
# What a reload cannot apply (informational: `make up` applies it).
.venv/bin/python -m bundle.drift status --prefix "make reload" || true
exit $status

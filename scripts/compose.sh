#!/usr/bin/env bash
# docker compose with the stack's settings: config/compose.env (rendered from values.yaml:
# images, ports, layers in COMPOSE_FILE) and .env (secrets). Run from anywhere:
#   scripts/compose.sh ps
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f config/compose.env ] || { echo "config/compose.env is missing: run make render" >&2; exit 1; }
[ -f .env ] || { echo ".env is missing: run make render" >&2; exit 1; }
exec docker compose --env-file config/compose.env --env-file .env "$@"

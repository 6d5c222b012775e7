#!/usr/bin/env bash
# Start the demo platform the live tests watch, on the stack's app network, after
# `make up` (the notification sink also joins the stack's own network) and after
# tests/platform/env.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -f .env ] || { echo ".env is missing: run make render first" >&2; exit 1; }

setting() { sed -n "s/^$1='\(.*\)'$/\1/p" config/compose.env; }
docker image inspect obsbundle-demo/platform:forky >/dev/null 2>&1 || tests/platform/build.sh
APP_NETWORK=$(setting APP_NETWORK) STACK_NETWORK="$(setting COMPOSE_PROJECT_NAME)_default" \
    docker compose --env-file .env -f tests/platform/compose.yml up --detach --wait --wait-timeout 120

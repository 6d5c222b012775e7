#!/usr/bin/env bash
# Start the demo platform the live tests watch, after tests/platform/env.sh, in two runs
# around `make up`:
#   tests/platform/up.sh; make up ...; tests/platform/up.sh
# The first run, before the stack exists, starts the platform on its app network (made
# here when missing): the stack then finds every target up from its first scrape, and no
# alert fires about a platform that is not there yet (a notification that fails at start
# stays in the counters `make smoke` reads for an hour). The second run, once the stack's
# own network exists, adds the notification sink, which joins that network. A single run
# after `make up` starts everything at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -f .env ] || { echo ".env is missing: run make render first" >&2; exit 1; }

setting() { sed -n "s/^$1='\(.*\)'$/\1/p" config/compose.env; }
docker image inspect obsbundle-demo/platform:forky >/dev/null 2>&1 || tests/platform/build.sh
export APP_NETWORK STACK_NETWORK
APP_NETWORK=$(setting APP_NETWORK)
STACK_NETWORK="$(setting COMPOSE_PROJECT_NAME)_default"
docker network inspect "$APP_NETWORK" >/dev/null 2>&1 || docker network create "$APP_NETWORK" >/dev/null
services=()
if ! docker network inspect "$STACK_NETWORK" >/dev/null 2>&1; then
    # Everything but the sink, which needs the stack's network.
    mapfile -t services < <(docker compose --env-file .env -f tests/platform/compose.yml config --services | grep -vx sink)
fi
docker compose --env-file .env -f tests/platform/compose.yml up --detach --wait --wait-timeout 120 "${services[@]}"

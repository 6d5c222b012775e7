#!/usr/bin/env bash
# docker compose with the stack's settings: config/compose.env (rendered from values.yaml:
# images, ports, bind address, layers in COMPOSE_FILE), .env (secrets) and
# .stack/fingerprints.yml (a salted hash of each service's secrets and mounted files, so
# that `up` recreates a service whose inputs changed: bundle/drift.py). Run from anywhere:
#   scripts/compose.sh ps
# The reviewed settings win: config/compose.env is read last (a later --env-file wins),
# render.py refuses a .env line that names one of its variables, and those variables are
# dropped from this process's environment, which Compose would otherwise prefer to both.
# https://docs.docker.com/compose/how-tos/environment-variables/envvars-precedence/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f config/compose.env ] || { echo "config/compose.env is missing: run make render" >&2; exit 1; }
[ -f .env ] || { echo ".env is missing: run make render" >&2; exit 1; }
while IFS= read -r name; do
    unset "$name"
done < <(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' config/compose.env; compgen -v COMPOSE_ || true)
# What depends on the host (SELinux, the propagation of /): scripts/host-env.sh.
host_env=$(scripts/host-env.sh config/compose.env)
while IFS= read -r line; do
    export "${line?}"
done <<<"$host_env"

fingerprints=.stack/fingerprints.yml
# Refresh the fingerprints when a secret, the rendered config or a Compose file is newer.
if [ -x .venv/bin/python ] && { [ ! -f "$fingerprints" ] \
        || [ -n "$(find .env .secrets config compose -newer "$fingerprints" -print -quit 2>/dev/null)" ]; }; then
    .venv/bin/python -m bundle.drift overlay || echo "scripts/compose.sh: kept the previous $fingerprints" >&2
fi
files=$(sed -n "s/^COMPOSE_FILE='\(.*\)'$/\1/p" config/compose.env)
if [ -f "$fingerprints" ]; then
    # Set here, this one variable overrides config/compose.env's COMPOSE_FILE: the same
    # files plus the fingerprints.
    export COMPOSE_FILE="$files:$fingerprints"
fi
exec docker compose --env-file .env --env-file config/compose.env "$@"

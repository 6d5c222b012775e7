#!/usr/bin/env bash
# Start the stack from the rendered config and wait until every service is healthy.
# On failure, name the service that failed first (or say the wait timed out) and show
# its last log lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
compose=scripts/compose.sh
timeout=${UP_TIMEOUT:-300}
python=${PYTHON:-.venv/bin/python}

# Changes reach the running stack (bundle/drift.py): before `compose up`, fresh
# fingerprints of each service's secrets and mounted files, a stop when a running service
# keeps a credential .env no longer holds, and which services will be recreated and why;
# after it, which were, a reload for those that re-read their files, and the credentials
# services keep in their own state applied (bundle/credentials.py).
changes_before() { "$python" -m bundle.drift before; }
changes_after() { "$python" -m bundle.drift after; }

# Start and wait until every service is healthy (or its one-shot job completed). When it
# does not, say which service failed first and show its last log lines, or that the wait
# timed out and on what (bundle/startup.py).
start_stack() {
    "$python" -m bundle.startup --timeout "$timeout" -- \
        $compose up --detach --wait --wait-timeout "$timeout" --remove-orphans
}

# Every image is here before anything is stopped or recreated (scripts/pull.sh).
pull_images() { scripts/pull.sh; }
pull_images

# The monitored platform's network is external to this project; create it when the
# platform is not running yet so the stack can start first.
network=$(sed -n "s/^APP_NETWORK='\(.*\)'$/\1/p" config/compose.env)
if ! docker network inspect "$network" >/dev/null 2>&1; then
    echo "creating Docker network $network (the monitored platform joins it)"
    docker network create "$network" >/dev/null
fi

changes_before
if ! start_stack; then
    # A credential a service keeps in its state and rejects: one line naming the secret.
    "$python" -m bundle.drift credentials || true
    exit 1
fi
# One-shot jobs that nothing depends on run after the rest is healthy: `up --wait`
# fails when such a job exits (https://github.com/docker/compose/issues/10596).
for job in $($compose --profile post-up config --services); do
    if [ "$($compose config --services | grep -cx "$job")" = 0 ]; then
        echo "running $job"
        $compose --profile post-up run --rm --no-deps "$job"
    fi
done
$compose ps --format 'table {{.Service}}\t{{.Status}}'
changes_after

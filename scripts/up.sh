#!/usr/bin/env bash
# Start the stack from the rendered config and wait until every service is healthy.
# On failure, print the state and the logs of each service that did not get there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
compose=scripts/compose.sh
timeout=${UP_TIMEOUT:-300}

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

if $compose up --detach --wait --wait-timeout "$timeout" --remove-orphans; then
    # One-shot jobs that nothing depends on run after the rest is healthy: `up --wait`
    # fails when such a job exits (https://github.com/docker/compose/issues/10596).
    for job in $($compose --profile post-up config --services); do
        if [ "$($compose config --services | grep -cx "$job")" = 0 ]; then
            echo "running $job"
            $compose --profile post-up run --rm --no-deps "$job"
        fi
    done
    $compose ps --format 'table {{.Service}}\t{{.Status}}'
    exit 0
fi

echo "make up: the stack did not become healthy within ${timeout}s" >&2
$compose ps --all --format 'table {{.Service}}\t{{.State}}\t{{.Status}}' >&2
# Not running (one-shot jobs that exited 0 are fine), or running but not healthy.
for service in $($compose ps --all --format '{{.Service}} {{.State}} {{.ExitCode}} {{.Health}}' \
        | awk '($2 != "running" && !($2 == "exited" && $3 == 0)) || ($2 == "running" && $4 != "" && $4 != "healthy") {print $1}'); do
    echo "----- logs of $service -----" >&2
    $compose logs --no-color --tail 60 "$service" >&2 || true
done
exit 1

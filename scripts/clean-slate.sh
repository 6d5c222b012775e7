#!/usr/bin/env bash
# Remove what an earlier run left on this Docker engine before a run that starts the stack
# for tests (.ci/run, make fullstack): the containers, networks and volumes of the
# bundle's Compose project (config/compose.env) and of the demo platform's (`platform`),
# and the app network, whichever checkout started them. The project names are fixed and
# `restart: unless-stopped` brings containers back with the engine, so without this a run
# would reuse another run's containers and volumes (and their secrets). It DELETES their
# data: never use it on a stack you keep. Says what it removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

setting() { sed -n "s/^$1='\(.*\)'$/\1/p" config/compose.env; }
projects=("$(setting COMPOSE_PROJECT_NAME)" platform)
app_network=$(setting APP_NETWORK)

removed=()
# Containers of every project first: the demo platform's sink sits on the stack's network.
for project in "${projects[@]}"; do
    containers=$(docker ps --all --quiet --filter "label=com.docker.compose.project=$project")
    if [ -n "$containers" ]; then
        # shellcheck disable=SC2086 # one id per word
        docker rm --force --volumes $containers >/dev/null
        removed+=("$(wc -w <<<"$containers") container(s) of $project")
    fi
done
for project in "${projects[@]}"; do
    filter=(--filter "label=com.docker.compose.project=$project")
    networks=$(docker network ls --quiet "${filter[@]}")
    if [ -n "$networks" ]; then
        # shellcheck disable=SC2086
        docker network rm $networks >/dev/null
        removed+=("$(wc -w <<<"$networks") network(s) of $project")
    fi
    volumes=$(docker volume ls --quiet "${filter[@]}")
    if [ -n "$volumes" ]; then
        # shellcheck disable=SC2086
        docker volume rm --force $volumes >/dev/null
        removed+=("$(wc -w <<<"$volumes") volume(s) of $project")
    fi
done
# make up creates the app network itself, without a project label.
if docker network inspect "$app_network" >/dev/null 2>&1; then
    docker network rm "$app_network" >/dev/null
    removed+=("the app network $app_network")
fi

if [ ${#removed[@]} -eq 0 ]; then
    echo "clean slate: nothing left by an earlier run (projects ${projects[*]})"
else
    printf 'clean slate: removed what an earlier run left: %s\n' "$(IFS=,; echo "${removed[*]}" | sed 's/,/, /g')"
fi

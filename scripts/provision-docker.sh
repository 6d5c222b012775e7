#!/usr/bin/env bash
# Install and start a Docker engine plus the Compose v2 plugin on a Debian 12 host
# without systemd, and install debootstrap (used by standins/build.sh).
#
#   docker.io       from bookworm (dockerd 20.10: older than 28.0.0, so `make up` refuses
#                   it unless DOCTOR_ACCEPT=engine-loopback-exposure, moby#45610; .ci/run
#                   accepts it and says why)
#   docker-compose  from forky, pinned low (gives `docker compose` 2.40.x)
#
# Idempotent: does nothing when `docker compose version` works and a daemon answers.
# Environment:
#   DOCKER_DATA_ROOT   dockerd --data-root   (default /var/lib/docker)
#   DOCKERD_LOG        dockerd log file      (default /var/log/dockerd.log)
#   DOCKERD_TIMEOUT    seconds to wait for `docker info` (default 60)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

DOCKER_DATA_ROOT=${DOCKER_DATA_ROOT:-/var/lib/docker}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}

daemon_answers() { timeout 10 docker info >/dev/null 2>&1; }
compose_works() { docker compose version >/dev/null 2>&1; }

if compose_works && daemon_answers && command -v debootstrap >/dev/null; then
    obs_log "docker engine and compose already working: $(docker compose version --short)"
    exit 0
fi

obs_require_root

# 1. Packages.
if ! command -v dockerd >/dev/null; then
    obs_apt_update
    obs_apt_install docker.io
fi
if ! command -v debootstrap >/dev/null; then
    obs_apt_update
    obs_apt_install debootstrap
fi
if ! compose_works; then
    obs_ensure_forky_source
    obs_apt_install -t forky docker-compose
    compose_works || obs_die "docker-compose installed but 'docker compose version' still fails"
fi

# 2. Daemon.
if ! daemon_answers; then
    if pgrep -x dockerd >/dev/null; then
        obs_log "dockerd is running but not answering yet; waiting"
    else
        # Stale pid file from a killed dockerd blocks a new start.
        rm -f /var/run/docker.pid
        mkdir -p "$DOCKER_DATA_ROOT" "$(dirname "$DOCKERD_LOG")"
        obs_log "starting dockerd (data-root $DOCKER_DATA_ROOT, log $DOCKERD_LOG)"
        nohup dockerd --data-root "$DOCKER_DATA_ROOT" >>"$DOCKERD_LOG" 2>&1 </dev/null &
        disown || true
    fi
    deadline=$((SECONDS + DOCKERD_TIMEOUT))
    until daemon_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            obs_log "last lines of $DOCKERD_LOG:"
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            obs_die "docker daemon did not answer within ${DOCKERD_TIMEOUT}s"
        fi
        sleep 1
    done
fi

obs_log "ready: engine $(docker version --format '{{.Server.Version}}'), compose $(docker compose version --short)"

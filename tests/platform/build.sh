#!/usr/bin/env bash
# Build the demo platform image, from the stand-in base image (standins/build.sh) or,
# with PLATFORM_BASE=debian:forky, from the registry.
# The build context is this folder plus the package source from instrumentation/,
# streamed as a tar so the repository's virtualenvs never reach the Docker daemon, with
# the modes a umask 022 checkout has whatever the checkout's umask (COPY keeps them, and
# the platform's services run as non-root users).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tar -c --sort=name --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
        --exclude=__pycache__ --exclude='*.egg-info' Dockerfile app -C ../.. instrumentation/src \
    | DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=${PLATFORM_BASE:-obsbundle-standin/base:forky}" \
        --tag obsbundle-demo/platform:forky - >/dev/null
echo "built obsbundle-demo/platform:forky"

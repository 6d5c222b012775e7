#!/usr/bin/env bash
# Build the demo platform image (needs the stand-in base image: standins/build.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
DOCKER_BUILDKIT=0 docker build --quiet --tag obsbundle-demo/platform:forky . >/dev/null
echo "built obsbundle-demo/platform:forky"

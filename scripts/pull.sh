#!/usr/bin/env bash
# `make up`'s first step: every image the rendered config runs is here before anything is
# stopped or recreated. Pulls those that are missing; when one cannot be pulled, prints per
# image why (registry unreachable, tag not found, access denied) and what to do, and
# exits 1 (bundle/images.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! .venv/bin/python -m bundle.images pull --rendered; then
    echo "make up: stopped before changing anything: the images above could not be pulled" >&2
    exit 1
fi

#!/usr/bin/env bash
# A checkout made under a strict umask comes up healthy and passes the live level's core
# checks (tests/live/test_1_stack.py): for each UMASK given, clone this checkout under it,
# `make up` there with VALUES (the same as this checkout's stack), run the checks, and take
# that stack down again (its volumes too). Run it after `make up` and the demo platform
# (tests/platform/up.sh) in this checkout; it replaces this checkout's stack, which it
# takes down first.
#
#   tests/umask.sh 027 077            (VALUES="..." as for make up; .ci/run does this)
#   UMASK_LEVEL=live tests/umask.sh 027 077
#                                     (the whole live level instead of the core checks:
#                                     about 12 minutes a clone, too long for CI; the demo
#                                     platform must run, its sink is attached to the clone's stack)
#
# The clone uses this checkout's .venv and .tools (a fresh venv is a minute of pip) and a
# copy of its .env (the demo platform's passwords). Only committed files are cloned.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$#" -gt 0 ] || { echo "usage: tests/umask.sh UMASK..." >&2; exit 2; }
here=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

scripts/compose.sh down --remove-orphans --volumes >/dev/null 2>&1 || true
for mask in "$@"; do
    clone="$scratch/umask-$mask"
    (umask "$mask" && git clone --quiet "$here" "$clone")
    echo "tests/umask.sh: umask $mask: $(stat -c '%a %n' "$clone/config/prometheus/prometheus.yml" "$clone/standins/install-deb.sh" | tr '\n' ' ')"
    ln -s "$here/.venv" "$clone/.venv"
    # The linked .venv is current: the clone's fresh requirements.txt must not make make reinstall it.
    touch "$here/.venv/.installed"
    [ -d .tools ] && ln -s "$here/.tools" "$clone/.tools"
    cp -p .env "$clone/.env"
    status=0
    (
        cd "$clone"
        umask "$mask"
        make --no-print-directory up VALUES="${VALUES:-}"
        case ${UMASK_LEVEL:-core} in
            core)
                # A stack of its own, made for this test: disposable (tests/live/conftest.py).
                LIVE_TEST_STACK=1 BUNDLE_VALUES="${VALUES:-}" .venv/bin/python -m pytest -m live -q -p no:cacheprovider tests/live/test_1_stack.py ;;
            live)
                tests/platform/up.sh
                LIVE_REQUIRE_PLATFORM=1 BUNDLE_VALUES="${VALUES:-}" .venv/bin/python -m pytest -m live -q -p no:cacheprovider ;;
            *) echo "tests/umask.sh: UMASK_LEVEL is core or live, not ${UMASK_LEVEL}" >&2; exit 2 ;;
        esac
    ) || status=$?
    (cd "$clone" && scripts/compose.sh down --remove-orphans --volumes >/dev/null 2>&1) || true
    [ "$status" = 0 ] || { echo "tests/umask.sh: the clone made under umask $mask failed" >&2; exit 1; }
    echo "tests/umask.sh: umask $mask: make up and the ${UMASK_LEVEL:-core} live checks passed"
done

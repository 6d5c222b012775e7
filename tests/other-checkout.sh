#!/usr/bin/env bash
# Leave a stack running the way an earlier, killed run would: from a second copy of this
# checkout, with its own freshly generated secrets, the core stack and the demo platform
# are started and left up. Run it before scripts/clean-slate.sh, make up and the live
# suite (.ci/run does): they must pass as if nothing had been there.
#   tests/other-checkout.sh VALUES...     (the overlays of the live stack)
# Prints the copy's directory; remove it once its stack is gone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
here=$PWD
other=$(mktemp -d /tmp/obsbundle-other.XXXXXX)
# The tracked files as they are here, with this checkout's Python environment and tools.
git ls-files -z | tar --null --files-from=- --create --file=- | tar --extract --directory="$other"
ln -s "$here/.venv" "$other/.venv"
[ -d .tools ] && ln -s "$here/.tools" "$other/.tools"
if ! (cd "$other" && make render VALUES="$*" && tests/platform/env.sh && make up VALUES="$*" \
        && tests/platform/up.sh) >"$other.log" 2>&1; then
    tail -n 40 "$other.log" >&2
    echo "tests/other-checkout.sh: the stack of $other did not start" >&2
    exit 1
fi
rm -f "$other.log"
echo "$other"

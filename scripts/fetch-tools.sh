#!/usr/bin/env bash
# Put host copies of promtool and amtool, of exactly the versions in versions.yaml
# (those the stand-in images run), into .tools/bin/ (relative to the repo root), and
# Alertmanager's default notification templates (which its binary embeds, and amtool
# needs to render a text that uses them) into .tools/share/alertmanager/, and the
# alertmanager binary of amtool's package (the contract tests run it on loopback to prove
# the inhibit rules) with the two default templates it reads from /usr/share. They come
# from Debian forky's packages (apt-get download + dpkg-deb -x; no package is installed) and are
# static-enough Go binaries that need only libc, so they run on the bookworm host.
#
# Cached: exits at once when both binaries are present and report the pinned
# versions. Fails loudly when Debian serves a different upstream version.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || obs_die "no $python: run make venv first (it reads versions.yaml)"
while IFS='|' read -r tool package version; do
    case $tool in
        promtool) PROMTOOL_PACKAGE=$package PROMTOOL_VERSION=$version ;;
        amtool) AMTOOL_PACKAGE=$package AMTOOL_VERSION=$version ;;
    esac
done < <(cd "$root" && "$python" -m bundle.versions validators)
[ -n "${PROMTOOL_VERSION:-}" ] && [ -n "${AMTOOL_VERSION:-}" ] || obs_die "versions.yaml lacks promtool or amtool"

bindir="$root/.tools/bin"
sharedir="$root/.tools/share/alertmanager"

# tool_version BIN -> prints the upstream version the binary reports, e.g. 1.2.3
tool_version() {
    "$1" --version 2>&1 | sed -n 's/^[a-z]* *, version \([0-9][0-9.]*\).*/\1/p' | head -n1
}

# Debian's alertmanager build reads its default notification templates from this fixed
# path (the package puts them there); the host copy needs them in the same place.
amshare=/usr/share/prometheus/alertmanager

is_current() {
    [ -x "$bindir/promtool" ] && [ -x "$bindir/amtool" ] && [ -x "$bindir/alertmanager" ] \
        && [ -f "$amshare/default.tmpl" ] \
        && [ "$(tool_version "$bindir/promtool")" = "$PROMTOOL_VERSION" ] \
        && [ "$(tool_version "$bindir/amtool")" = "$AMTOOL_VERSION" ] \
        && [ "$(tool_version "$bindir/alertmanager")" = "$AMTOOL_VERSION" ] \
        && [ -f "$sharedir/default.tmpl" ]
}

if is_current; then
    obs_log "cached: promtool $PROMTOOL_VERSION, amtool and alertmanager $AMTOOL_VERSION in .tools/bin"
    exit 0
fi

obs_require_root
obs_ensure_forky_source

# Check what forky serves before downloading: the upstream part of the Debian
# version (1.2.3+ds1-6 -> 1.2.3) must equal the pin.
check_served() { # PKG EXPECTED
    local deb upstream
    deb=$(obs_forky_version "$1")
    [ -n "$deb" ] || obs_die "Debian forky offers no package '$1'"
    upstream=${deb#*:}
    upstream=${upstream%%[+~-]*}
    if [ "$upstream" != "$2" ]; then
        obs_die "Debian forky serves $1 $deb (upstream $upstream), but this script pins $2; update the pin deliberately"
    fi
    printf '%s\n' "$deb"
}
promtool_deb=$(check_served "$PROMTOOL_PACKAGE" "$PROMTOOL_VERSION")
amtool_deb=$(check_served "$AMTOOL_PACKAGE" "$AMTOOL_VERSION")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
    cd "$work"
    obs_log "apt-get download $PROMTOOL_PACKAGE=$promtool_deb $AMTOOL_PACKAGE=$amtool_deb"
    apt-get -qq -o APT::Sandbox::User=root download "$PROMTOOL_PACKAGE=$promtool_deb" "$AMTOOL_PACKAGE=$amtool_deb" >/dev/null \
        || obs_die "apt-get download failed"
    for deb in ./*.deb; do dpkg-deb -x "$deb" extract; done
)

mkdir -p "$bindir"
install -m 0755 "$work/extract/usr/bin/promtool" "$bindir/promtool.new"
install -m 0755 "$work/extract/usr/bin/amtool" "$bindir/amtool.new"
# Debian names the server binary after its package.
install -m 0755 "$work/extract/usr/bin/prometheus-alertmanager" "$bindir/alertmanager.new"

got_p=$(tool_version "$bindir/promtool.new")
got_a=$(tool_version "$bindir/amtool.new")
got_m=$(tool_version "$bindir/alertmanager.new")
if [ "$got_p" != "$PROMTOOL_VERSION" ] || [ "$got_a" != "$AMTOOL_VERSION" ] || [ "$got_m" != "$AMTOOL_VERSION" ]; then
    rm -f "$bindir/promtool.new" "$bindir/amtool.new" "$bindir/alertmanager.new"
    obs_die "version mismatch: promtool reports '${got_p}' (want $PROMTOOL_VERSION), amtool '${got_a}' and alertmanager '${got_m}' (want $AMTOOL_VERSION)"
fi
mv -f "$bindir/promtool.new" "$bindir/promtool"
mv -f "$bindir/amtool.new" "$bindir/amtool"
mv -f "$bindir/alertmanager.new" "$bindir/alertmanager"
mkdir -p "$sharedir" "$amshare"
install -m 0644 "$work"/extract/usr/share/prometheus/alertmanager/*.tmpl "$sharedir/"
install -m 0644 "$work/extract$amshare/default.tmpl" "$work/extract$amshare/email.tmpl" "$amshare/"
obs_log "installed .tools/bin/promtool $got_p, .tools/bin/amtool $got_a and .tools/bin/alertmanager $got_m"

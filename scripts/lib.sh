# shellcheck shell=bash
# Shared helpers for scripts/*.sh and standins/build.sh. Source it, do not run it.
#
# Debian forky is added as an extra apt source with a low pin priority (100), so
# nothing is upgraded from it unless asked for explicitly with `-t forky` or
# `apt-get download PKG/forky`. The mirror's forky Release file reads as expired,
# hence Acquire::Check-Valid-Until=false on every update.

OBS_FORKY_LIST=/etc/apt/sources.list.d/forky.list
OBS_FORKY_PIN=/etc/apt/preferences.d/forky
OBS_FORKY_LINE='deb http://deb.debian.org/debian forky main'
OBS_APT_UPDATED=${OBS_APT_UPDATED:-0}

obs_log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
obs_die() { printf '[%s] ERROR: %s\n' "${0##*/}" "$*" >&2; exit 1; }

obs_require_root() {
    [ "$(id -u)" -eq 0 ] || obs_die "must run as root (needs apt-get)"
}

# apt-get update (quiet, accepts the expired forky Release file); at most once per run.
obs_apt_update() {
    [ "$OBS_APT_UPDATED" = 1 ] && return 0
    obs_log "apt-get update"
    apt-get -qq -o Acquire::Check-Valid-Until=false update >/dev/null \
        || obs_die "apt-get update failed"
    OBS_APT_UPDATED=1
}

# Quiet, non-interactive apt-get install; extra args are passed through.
obs_apt_install() {
    obs_log "apt-get install $*"
    local log
    log=$(mktemp)
    if ! DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o Dpkg::Use-Pty=0 \
            --no-install-recommends install "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        obs_die "apt-get install $* failed"
    fi
    rm -f "$log"
}

# Make sure the forky source and its pin exist and that its package lists are
# present; runs apt-get update only when something is missing.
obs_ensure_forky_source() {
    local changed=0
    if [ "$(cat "$OBS_FORKY_LIST" 2>/dev/null)" != "$OBS_FORKY_LINE" ]; then
        printf '%s\n' "$OBS_FORKY_LINE" >"$OBS_FORKY_LIST"
        changed=1
    fi
    local pin
    pin=$(printf 'Package: *\nPin: release n=forky\nPin-Priority: 100\n')
    if [ "$(cat "$OBS_FORKY_PIN" 2>/dev/null)" != "$pin" ]; then
        printf '%s\n' "$pin" >"$OBS_FORKY_PIN"
        changed=1
    fi
    if [ "$changed" = 1 ] || ! compgen -G '/var/lib/apt/lists/*_dists_forky_main_binary-*_Packages*' >/dev/null; then
        OBS_APT_UPDATED=0
        obs_apt_update
    fi
}

# Print the version of PKG that the forky source offers (empty if none).
obs_forky_version() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '$3 ~ /forky/ {gsub(/ /,"",$2); print $2; exit}'
}

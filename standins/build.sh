#!/usr/bin/env bash
# Build the stand-in images (see README.md next to this file). No arguments.
#
#   1. obsbundle-standin/base:forky  - Debian forky minbase from debootstrap, made
#      once and imported with `docker import` (skipped when the image exists; the
#      rootfs tarball is cached outside the repo, in $OBS_STANDIN_CACHE).
#   2. one image per service from standins/<service>/Dockerfile, with standins/
#      as build context, relying on Docker's layer cache. The context is sent as a tar
#      whose modes are 0644/0755 whatever the checkout's (a clone made under umask 027
#      or 077): COPY keeps the context's modes, and the images run as non-root users.
#   3. a quick check that each image's binary reports the pinned version.
#
# Needs a running Docker engine and debootstrap (scripts/provision-docker.sh), and
# .venv (make venv) to read versions.yaml.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=../scripts/lib.sh source-path=SCRIPTDIR
. "$root/scripts/lib.sh"

BASE_IMAGE=obsbundle-standin/base:forky
MIRROR=http://deb.debian.org/debian
CACHE_DIR=${OBS_STANDIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/obsbundle-standins}

# One line per stand-in, from versions.yaml: directory | image | version | binary checked
# with --version.
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || obs_die "no $python: run make venv first (it reads versions.yaml)"
mapfile -t SERVICES < <(cd "$root" && "$python" -m bundle.versions standins)
[ "${#SERVICES[@]}" -gt 0 ] || obs_die "versions.yaml lists no stand-in"

timeout 20 docker info >/dev/null 2>&1 \
    || obs_die "no Docker daemon answers; run scripts/provision-docker.sh first"

logdir=$(mktemp -d)
rootfs=
cleanup() {
    if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
        # debootstrap may leave proc/sys mounted when it fails half-way.
        awk -v r="$rootfs" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r \
            | while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$rootfs"
    fi
    rm -rf "$logdir"
}
trap cleanup EXIT

# run LOGNAME CMD...: run quietly; on failure show the tail of its output and stop.
run() {
    local log="$logdir/$1.log"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        obs_die "failed: $*"
    fi
}

make_rootfs_tarball() { # TARBALL
    command -v debootstrap >/dev/null \
        || obs_die "debootstrap is missing; run scripts/provision-docker.sh first"
    mkdir -p "$CACHE_DIR"
    rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    obs_log "debootstrap forky (minbase) into $rootfs"
    # bookworm's debootstrap has no forky script; forky uses the sid one.
    run debootstrap debootstrap --variant=minbase --include=ca-certificates,busybox \
        forky "$rootfs" "$MIRROR" /usr/share/debootstrap/scripts/sid

    # Small images: no docs, man pages or locales; no recommends; no translations.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90-obsbundle-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
CFG
    cat >"$rootfs/etc/apt/apt.conf.d/90-obsbundle" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CFG
    # Never start services from maintainer scripts during image builds.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    # Upstream images are busybox-based: give healthchecks their `wget`.
    [ -x "$rootfs/usr/bin/busybox" ] || obs_die "busybox missing from the rootfs"
    ln -sf busybox "$rootfs/usr/bin/wget"
    # Drop what the image never needs; Docker supplies hostname and resolv.conf.
    find "$rootfs/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
           "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
           "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    : >"$rootfs/etc/resolv.conf"
    rm -f "$rootfs/etc/hostname"

    tar --numeric-owner -C "$rootfs" -cf "$1.tmp" .
    mv -f "$1.tmp" "$1"
    rm -rf --one-file-system "$rootfs"
    rootfs=
}

build_base() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        obs_log "base image $BASE_IMAGE exists; skipping"
        return
    fi
    local tarball="$CACHE_DIR/base-forky-rootfs.tar"
    if [ -s "$tarball" ]; then
        obs_log "using cached rootfs $tarball"
    else
        make_rootfs_tarball "$tarball"
    fi
    obs_log "docker import -> $BASE_IMAGE"
    run import docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["/bin/bash"]' \
        -c 'LABEL org.opencontainers.image.description="Debian forky minbase from debootstrap: base of the obsbundle stand-in images"' \
        -m "debootstrap --variant=minbase forky" \
        "$tarball" "$BASE_IMAGE"
}

t0=$SECONDS
build_base
obs_log "base ready ($((SECONDS - t0)) s)"

# standins/ as a tar with the modes a umask 022 checkout has (u=rwX,go=rX) and root as
# owner, whatever the checkout's umask. The classic builder (the engine is Docker 20.10
# and buildx may be absent) has no COPY --chmod; its cache keys on these modes.
build_image() { # SERVICE IMAGE VERSION
    tar -C "$here" -c --sort=name --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX . \
        | DOCKER_BUILDKIT=0 docker build --build-arg "VERSION=$3" -f "$1/Dockerfile" -t "$2" -
}

built=()
for entry in "${SERVICES[@]}"; do
    IFS='|' read -r svc image version bin <<<"$entry"
    t0=$SECONDS
    run "build-$svc" build_image "$svc" "$image" "$version"
    out=$(docker run --rm --entrypoint "$bin" "$image" --version 2>&1) \
        || obs_die "$image: '$bin --version' failed: $out"
    grep -qF "$version" <<<"$out" \
        || obs_die "$image: '$bin --version' does not report $version: $out"
    obs_log "built $image ($((SECONDS - t0)) s)"
    built+=("$image")
done

printf '%s\n' "${built[@]}"

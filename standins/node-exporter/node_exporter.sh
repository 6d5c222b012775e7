#!/bin/sh
# /bin/node_exporter in the stand-in image. Debian's build enables the systemd
# collector by default and excludes more mount points (/run, /mnt, /media) than
# upstream. Put upstream's defaults back for the flags the caller did not pass.
given() { f=$1; shift; for a do case $a in "$f" | "$f"=*) return 0 ;; esac; done; return 1; }
given --collector.systemd "$@" || given --no-collector.systemd "$@" \
    || set -- --no-collector.systemd "$@"
given --collector.filesystem.mount-points-exclude "$@" \
    || given --collector.filesystem.ignored-mount-points "$@" \
    || set -- '--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)' "$@"
exec /usr/bin/prometheus-node-exporter "$@"

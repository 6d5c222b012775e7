#!/usr/bin/env bash
# The Compose variables that depend on the host rather than on the values, as NAME=value
# lines (scripts/compose.sh exports them):
#   BIND_LABEL  ",z" (the shared SELinux label, so containers may read the config/ bind
#               mounts) when values selinux_relabel is always, or auto and SELinux is
#               enforcing; empty otherwise.
# usage: scripts/host-env.sh COMPOSE_ENV   (HOST_ROOT: read /sys below it; tests fake it)
set -euo pipefail
relabel=$(sed -n "s/^SELINUX_RELABEL='\(.*\)'$/\1/p" "$1")
label=
case $relabel in
    always) label=,z ;;
    auto) [ "$(cat "${HOST_ROOT:-}/sys/fs/selinux/enforce" 2>/dev/null)" = 1 ] && label=,z ;;
    never) ;;
    *) echo "$1: SELINUX_RELABEL is '$relabel', expected auto, always or never: run make render" >&2; exit 1 ;;
esac
echo "BIND_LABEL=$label"

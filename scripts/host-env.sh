#!/usr/bin/env bash
# The Compose variables that depend on the host rather than on the values, as NAME=value
# lines (scripts/compose.sh exports them):
#   BIND_LABEL  ",z" (the shared SELinux label, so containers may read the config/ bind
#               mounts) when values selinux_relabel is always, or auto and SELinux is
#               enforcing; empty otherwise.
#   HOST_ROOT_MOUNT  "ro" where the host's / is a private mount (some containers,
#               chroots), where Docker refuses the rslave propagation node_exporter's
#               mount of / asks for (compose/core.yml): a plain read-only mount, which
#               sees the filesystems mounted before it started; as set when set.
#               https://docs.docker.com/engine/storage/bind-mounts/#configure-bind-propagation
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
if [ -n "${HOST_ROOT_MOUNT:-}" ]; then
    echo "HOST_ROOT_MOUNT=$HOST_ROOT_MOUNT"
elif [ -z "${HOST_ROOT:-}" ] && [ -r /proc/self/mountinfo ] && ! awk '
        $5 == "/" { shared = 0; for (i = 7; $i != "-"; i++) if ($i ~ /^(shared|master):/) shared = 1 }
        END { exit !shared }' /proc/self/mountinfo; then
    echo "HOST_ROOT_MOUNT=ro"
fi

#!/bin/sh
# Used inside the stand-in Dockerfiles (copied to /usr/local/sbin/standin-install-deb):
#   standin-install-deb PACKAGE UPSTREAM_VERSION
# Installs one Debian package without recommends, fails if the upstream part of
# the Debian version (1.2.3+ds1-6 -> 1.2.3) is not UPSTREAM_VERSION, then drops
# the apt lists and caches so the layer stays small.
set -eu
pkg=${1:?usage: standin-install-deb PACKAGE UPSTREAM_VERSION}
want=${2:?usage: standin-install-deb PACKAGE UPSTREAM_VERSION (standins/build.sh passes it as --build-arg VERSION)}

apt-get -o Acquire::Check-Valid-Until=false -qq update
DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o Dpkg::Use-Pty=0 \
    install --no-install-recommends "$pkg" >/dev/null

deb=$(dpkg-query -W -f='${Version}' "$pkg")
up=${deb#*:}
up=${up%%[+~-]*}
if [ "$up" != "$want" ]; then
    echo "standin-install-deb: Debian serves $pkg $deb (upstream $up), expected $want" >&2
    exit 1
fi

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
       /var/log/apt/* /var/log/dpkg.log
echo "standin-install-deb: $pkg $deb"

#!/bin/sh
# /bin/alertmanager in the stand-in image. Debian's prometheus-alertmanager
# defaults to /etc/prometheus/alertmanager.yml and /var/lib/prometheus/alertmanager/;
# upstream defaults to alertmanager.yml and data/ relative to the working
# directory (/alertmanager). Put upstream's defaults back for the flags the
# caller did not pass.
given() { f=$1; shift; for a do case $a in "$f" | "$f"=*) return 0 ;; esac; done; return 1; }
given --storage.path "$@" || set -- --storage.path=data/ "$@"
given --config.file "$@" || set -- --config.file=alertmanager.yml "$@"
exec /usr/bin/prometheus-alertmanager "$@"

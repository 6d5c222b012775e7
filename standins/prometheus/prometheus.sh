#!/bin/sh
# /bin/prometheus in the stand-in image. Debian builds prometheus with its own
# path defaults (/etc/prometheus/prometheus.yml, /var/lib/prometheus/...); the
# upstream binary defaults to prometheus.yml, data/ and data-agent/ relative to
# the working directory (/prometheus). Put upstream's defaults back for the
# flags the caller did not pass, so a `command:` written for prom/prometheus
# behaves the same here. Agent mode rejects server-only flags and vice versa.
given() { f=$1; shift; for a do case $a in "$f" | "$f"=*) return 0 ;; esac; done; return 1; }
if given --agent "$@"; then
    given --storage.agent.path "$@" || set -- --storage.agent.path=data-agent/ "$@"
else
    given --storage.tsdb.path "$@" || set -- --storage.tsdb.path=data/ "$@"
fi
given --config.file "$@" || set -- --config.file=prometheus.yml "$@"
exec /usr/bin/prometheus.debian "$@"

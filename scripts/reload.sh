#!/usr/bin/env bash
# Apply the rendered config to the running Prometheus and Alertmanager without a restart.
# Run after render.py succeeded (the Makefile does): an invalid config never gets here.
# Each service is sent SIGHUP, then its own reload metrics must show a new successful
# reload; the lifecycle HTTP endpoint stays off.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
compose=scripts/compose.sh
deadline=${RELOAD_TIMEOUT:-30}

metric() { # SERVICE PORT NAME -> value of the metric NAME, scraped inside the container
    $compose exec -T "$1" wget -q -O - "http://127.0.0.1:$2/metrics" \
        | awk -v m="$3" '$1 == m {print $2}'
}

status=0
specs="prometheus:9090:prometheus alertmanager:9093:alertmanager"
# The second Alertmanager of the alertmanager_ha layer reads the same configuration.
if $compose config --services | grep -qx alertmanager-2; then
    specs="$specs alertmanager-2:9093:alertmanager"
fi
for spec in $specs; do
    IFS=: read -r service port prefix <<<"$spec"
    if [ -z "$($compose ps --status running --quiet "$service")" ]; then
        echo "reload: $service is not running; nothing to reload" >&2
        continue
    fi
    before=$(metric "$service" "$port" "${prefix}_config_last_reload_success_timestamp_seconds")
    $compose kill --signal SIGHUP "$service" >/dev/null
    for _ in $(seq "$deadline"); do
        sleep 1
        ok=$(metric "$service" "$port" "${prefix}_config_last_reload_successful")
        now=$(metric "$service" "$port" "${prefix}_config_last_reload_success_timestamp_seconds")
        [ "$ok" = 1 ] && [ "$now" != "$before" ] && break
        [ "$ok" = 0 ] && break
    done
    if [ "$ok" = 1 ] && [ "$now" != "$before" ]; then
        echo "reload: $service reloaded its configuration"
    else
        echo "reload: $service did not load the new configuration; its logs:" >&2
        $compose logs --no-color --tail 20 "$service" >&2
        status=1
    fi
done
exit $status

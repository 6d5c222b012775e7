#!/usr/bin/env bash
# Fill the secrets the demo platform and the default receivers need into .env where
# they are empty, before `make up`: the receivers then deliver to the platform's
# notification sink, and postgres_exporter logs in to the platform's PostgreSQL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -f .env ] || { echo ".env is missing: run make render first" >&2; exit 1; }

set_if_empty() { # VAR VALUE
    if grep -q "^$1=$" .env; then
        sed -i "s|^$1=$|$1=$2|" .env
        echo "tests/platform: set $1 in .env"
    elif ! grep -q "^$1=" .env; then
        echo "$1=$2" >>.env
        echo "tests/platform: added $1 to .env"
    fi
}
set_if_empty POSTGRES_EXPORTER_PASSWORD "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
set_if_empty REDIS_PASSWORD "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
set_if_empty SMTP_PASSWORD "$(head -c 24 /dev/urandom | base64 | tr -d "/+=")"
set_if_empty SLACK_CRITICAL_WEBHOOK_URL "http://sink:8080/slack-critical"
set_if_empty SLACK_WARNING_WEBHOOK_URL "http://sink:8080/slack-warning"
set_if_empty PAGER_URL "http://sink:8080/pager"
set_if_empty SMOKE_WEBHOOK_URL "http://sink:8080/smoke"


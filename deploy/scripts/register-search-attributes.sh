#!/bin/sh
# One-shot (service register-search-attributes): register each custom search attribute
# named on the command line as a Keyword, so leads can be found in the UI and with
# `temporal workflow list --query 'LeadPhone="+77771112233"'`. Idempotent: "already
# exists" counts as done; any other error fails the service, and with it `docker compose up`.
# PostgreSQL visibility offers 10 custom Keyword attributes per namespace.
set -eu
. /scripts/wait-for-temporal.sh

namespace=${TEMPORAL_NAMESPACE:-default}
for name in "$@"; do
    if output=$(temporal operator search-attribute create --namespace "$namespace" \
        --name "$name" --type Keyword 2>&1); then
        echo "registered $name"
    elif echo "$output" | grep -qi "already exists"; then
        echo "$name already exists"
    else
        echo "$output" >&2
        exit 1
    fi
done

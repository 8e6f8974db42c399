#!/bin/sh
# One-shot (service temporal-create-namespace): temporalio/server, unlike the deprecated
# auto-setup image, creates no namespace, and workers polling a missing namespace only log
# errors. Idempotent: an existing namespace is left as it is (retention included).
set -eu
. /scripts/wait-for-temporal.sh

namespace=${TEMPORAL_NAMESPACE:-default}
if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
    echo "namespace $namespace exists"
else
    temporal operator namespace create --namespace "$namespace" \
        --retention "${TEMPORAL_NAMESPACE_RETENTION:-720h}"
    echo "namespace $namespace created"
fi

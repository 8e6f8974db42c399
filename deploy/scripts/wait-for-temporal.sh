# Sourced by the one-shot admin-tools scripts: block until the frontend answers, or give
# up after about two minutes so a broken server fails `docker compose up` visibly.
: "${TEMPORAL_ADDRESS:?}"
host=${TEMPORAL_ADDRESS%:*}
port=${TEMPORAL_ADDRESS##*:}

# The CLI may try the service name's IPv6 address first while the server binds IPv4 only
# (BIND_ON_IP=0.0.0.0); Temporal's own compose samples pin the IPv4 address for this.
ipv4=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
if [ -n "$ipv4" ]; then
    TEMPORAL_ADDRESS="$ipv4:$port"
    export TEMPORAL_ADDRESS
fi

attempt=0
until temporal operator cluster health >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 60 ]; then
        echo "Temporal at $TEMPORAL_ADDRESS is not healthy after $attempt attempts" >&2
        exit 1
    fi
    sleep 2
done
echo "Temporal at $TEMPORAL_ADDRESS is healthy"

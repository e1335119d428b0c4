#!/bin/sh
# A Sentinel monitoring the primary the other sentinels name (else the first pod), by host name:
# pod addresses change when a pod is replaced, its DNS name does not.
set -eu
. /scripts/discover.sh
me="$HOSTNAME.redis-node"
primary=$(current_primary)
conf=/sentinel/sentinel.conf        # Sentinel rewrites its config: on an emptyDir
cat >"$conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
sentinel monitor gateway-cache ${primary:-redis-node-0.redis-node} 6379 2
sentinel down-after-milliseconds gateway-cache 5000
sentinel failover-timeout gateway-cache 60000
sentinel parallel-syncs gateway-cache 1
CONF
exec redis-sentinel "$conf"

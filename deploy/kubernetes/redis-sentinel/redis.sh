#!/bin/sh
# Start Redis as a replica of the primary the sentinels name; with no sentinel answering yet
# (a fresh deployment) the first pod is the primary and the others replicate from it.
set -eu
. /scripts/discover.sh
me="$HOSTNAME.redis-node"
primary=$(current_primary)
set -- --port 6379 --save "" --appendonly no --dir /data \
  --maxmemory 256mb --maxmemory-policy volatile-lru \
  --replica-announce-ip "$me"
if [ -n "$primary" ] && [ "$primary" != "$me" ]; then
  exec redis-server "$@" --replicaof "$primary" 6379
elif [ -z "$primary" ] && [ "${HOSTNAME##*-}" != 0 ]; then
  exec redis-server "$@" --replicaof redis-node-0.redis-node 6379
fi
exec redis-server "$@"

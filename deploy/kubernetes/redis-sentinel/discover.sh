# Sourced by redis.sh and sentinel.sh: prints the primary's host name that the first answering
# sentinel names, or nothing when none answers.
current_primary() {
  for i in 0 1 2; do
    answer=$(timeout 3 redis-cli -h "redis-node-$i.redis-node" -p 26379 --raw \
      sentinel get-master-addr-by-name gateway-cache 2>/dev/null | head -n 1) || answer=""
    if [ -n "$answer" ]; then
      echo "$answer"
      return 0
    fi
  done
}

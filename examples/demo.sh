#!/usr/bin/env bash
# The demo in one command: starts the DNS lab (lab/dns: NSD, Knot, BIND, Unbound on
# 127.0.53.x, port LAB_PORT, default 10053), then the exporter on examples/demo.toml:
# the sample mail logs and the lab's domains. Open http://localhost:2553/ and see the
# DNS findings beside the misroutes. ^C stops the exporter; `lab/dns/lab.sh stop`
# stops the lab. Extra arguments go to the exporter (e.g. --web.listen-address=:9553).
set -euo pipefail
cd "$(dirname "$0")/.."
env_out=$(lab/dns/lab.sh start)
port=$(printf '%s\n' "$env_out" | sed -n 's/^LAB_PORT=//p')
resolver=$(printf '%s\n' "$env_out" | sed -n 's/^LAB_RESOLVER=//p')
mkdir -p target
sed -e "s|^resolvers = .*|resolvers = [\"$resolver\"]|" -e "s|^port = .*|port = $port|" \
  examples/demo.toml >target/demo.toml
echo "DNS lab on port $port (stop it with: lab/dns/lab.sh stop); the exporter on http://localhost:2553/" >&2
exec cargo run --release --locked -- serve --config.file=target/demo.toml "$@"

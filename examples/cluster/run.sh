#!/usr/bin/env bash
# Starts three Trellis hosts on loopback as one NATS cluster, running the
# mesh example: builds trellis and the plugins once into .trellis/cluster,
# then starts examples/cluster/trellis.hcl three times:
#
#   member  NATS             routes           HTTP             data
#   n1      127.0.0.1:4222   127.0.0.1:6222   127.0.0.1:8080   .trellis/cluster/n1
#   n2      127.0.0.1:4223   127.0.0.1:6223   127.0.0.1:8081   .trellis/cluster/n2
#   n3      127.0.0.1:4224   127.0.0.1:6224   127.0.0.1:8082   .trellis/cluster/n3
#
# Each member's log lines are prefixed with its name. Ctrl-C stops all three.
# Kill one (kill -9 on the pid the log shows) to see the others carry on;
# run.sh restart n2 starts one member again by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.trellis/cluster

member() { # member N: start member nN in the background
	local i=$1
	"$out/trellis" run --config examples/cluster/trellis.hcl --nats-name "n$i" \
		--nats-listen "127.0.0.1:$((4221 + i))" --cluster-listen "127.0.0.1:$((6221 + i))" \
		--http-listen "127.0.0.1:$((8079 + i))" --data-dir "$out/n$i" \
		2> >(sed -u "s/^/[n$i] /" >&2) &
	echo "n$i: pid $!" >&2
}

if [ "${1:-}" = restart ]; then
	n=${2#n}
	member "$n"
	wait
	exit
fi

go build -o "$out/trellis" ./cmd/trellis
deploy/build-plugins.sh "$out/trellis" "$out/plugins" >/dev/null

trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do member "$i"; done
wait

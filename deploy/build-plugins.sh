#!/bin/sh
# Builds the plugins that deploy/kubernetes's config and examples/cluster
# serve (the mesh example, the counter and the built-in policies) into OUT,
# one NAME.wasm per source directory. The container build and
# examples/cluster/run.sh both use it, so the list is kept in one place.
#
#   deploy/build-plugins.sh TRELLIS OUT      (from the repository root)
set -eu
trellis=$1
out=$2
plugins="plugins/auth plugins/ratelimit plugins/split
	examples/orders-enrich examples/orders-notify
	examples/mesh/orders-store examples/mesh/orders-get examples/mesh/mailer
	examples/cluster/counter"
mkdir -p "$out"
for src in $plugins; do
	"$trellis" build "$src" -o "$out/$(basename "$src").wasm"
done

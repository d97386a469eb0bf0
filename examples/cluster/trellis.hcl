# The mesh example (examples/mesh) on three hosts that form one NATS cluster,
# for one machine: run.sh builds the plugins once and starts this config three
# times, each member with its own name, ports and data directory:
#
#   trellis run --config examples/cluster/trellis.hcl --nats-name n1 \
#     --nats-listen 127.0.0.1:4222 --cluster-listen 127.0.0.1:6222 \
#     --http-listen 127.0.0.1:8080 --data-dir .trellis/cluster/n1
#
# See README.md beside this file. The plugins are built modules (run.sh puts
# them in .trellis/cluster/plugins), so the three hosts do not build them
# three times over.

nats {
  listen = "127.0.0.1:4222" # --nats-listen for each member

  # Every member routes to every other; a member skips the route to itself.
  # On one machine the routes are loopback, so they need no credentials;
  # across machines set username and password_file (see deploy/kubernetes).
  cluster {
    name   = "trellis"
    listen = "127.0.0.1:6222" # --cluster-listen for each member
    routes = [
      "nats-route://127.0.0.1:6222",
      "nats-route://127.0.0.1:6223",
      "nats-route://127.0.0.1:6224",
    ]
  }

  # Three copies of the KV bucket: it survives the loss of any one member.
  jetstream {
    replicas = 3
  }
}

http {
  listen   = "127.0.0.1:8080" # --http-listen for each member
  max_body = "64KiB"
}

policy "auth" {
  path   = "../../.trellis/cluster/plugins/auth.wasm"
  config = { tokens = "dev:dev-token,ops:ops-token" } # demo tokens only
}

# The rate limit's buckets are in the shared KV store, so a client's limit
# holds across all three hosts.
policy "ratelimit" {
  path   = "../../.trellis/cluster/plugins/ratelimit.wasm"
  config = { rate = "2", burst = "8" }
}

policy "canary" {
  path    = "../../.trellis/cluster/plugins/split.wasm"
  config  = { targets = "orders.get.v1=90,orders.get.v2=10" }
  request = ["orders.get.v1", "orders.get.v2"]
}

# The order events are durable, as in examples/mesh: stored in the stream
# ORDERS, replicated like the KV bucket, before POST /orders answers 202,
# and delivered until handled, by whichever host is up.
plugin "orders-enrich" {
  path     = "../../.trellis/cluster/plugins/orders-enrich.wasm"
  subjects = ["orders.created"]
  publish  = ["orders.enriched", "orders.rejected"]
  durable {
    stream = "ORDERS"
  }
}

plugin "orders-store" {
  path         = "../../.trellis/cluster/plugins/orders-store.wasm"
  subjects     = ["orders.enriched"]
  kv_namespace = "orders"
  shared       = true
  durable {
    stream = "ORDERS"
  }
}

plugin "orders-notify" {
  path     = "../../.trellis/cluster/plugins/orders-notify.wasm"
  subjects = ["orders.enriched"]
  publish  = ["notifications.email"]
  config   = { default_recipient = "orders@example.com" }
  shared   = true
  durable {
    stream = "ORDERS"
  }
}

plugin "orders-get-v1" {
  path         = "../../.trellis/cluster/plugins/orders-get.wasm"
  subjects     = ["orders.get.v1"]
  kv_namespace = "orders"
  config       = { version = "v1" }
}

plugin "orders-get-v2" {
  path         = "../../.trellis/cluster/plugins/orders-get.wasm"
  subjects     = ["orders.get.v2"]
  kv_namespace = "orders"
  config       = { version = "v2" }
}

plugin "mailer" {
  path        = "../../.trellis/cluster/plugins/mailer.wasm"
  subjects    = ["notifications.email"]
  publish     = ["mail.sent"]
  idempotent  = true
  retries     = 2
  backoff     = "20ms"
  dead_letter = "notifications.dlq"
  breaker {
    failures = 5
    cooldown = "10s"
  }
}

# One counter in the replicated KV store, shared by the three hosts.
plugin "counter" {
  path     = "../../.trellis/cluster/plugins/counter.wasm"
  subjects = ["counter.incr", "counter.get"]
}

http_route "POST /orders" {
  subject  = "orders.created"
  event    = true
  policies = ["auth", "ratelimit"]
}

http_route "GET /orders/{id}" {
  subject  = "orders.get"
  policies = ["auth", "canary"]
}

http_route "POST /counter" {
  subject  = "counter.incr"
  policies = ["auth"]
}

http_route "GET /counter" {
  subject  = "counter.get"
  policies = ["auth"]
}

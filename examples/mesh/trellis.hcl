# The order flow as an event-driven service mesh: an HTTP ingress in front of
# the bus, authentication by JWTs from an identity provider, a scope check
# and a rate limit on the way in, a 90/10 canary between two versions of the
# order reader, and a deliberately flaky mailer protected by retries, a
# circuit breaker and a dead-letter subject.
#
#   go run ./examples/mesh/issuer serve &          # the demo identity provider
#   go run ./cmd/trellis run --config examples/mesh/trellis.hcl
#
# See README.md beside this file for the walk-through.

data_dir = "../../.trellis/mesh"

nats {
  listen = "127.0.0.1:4222"
}

http {
  listen   = "127.0.0.1:8080"
  max_body = "64KiB"
}

# Policies: built-in plugins, built from source like any plugin.

# Access tokens (JWTs) from an OpenID provider. Here it is the demo issuer
# of examples/mesh/issuer on loopback; README.md shows the same block for
# Keycloak, Auth0, Okta, Entra ID and Google. The host finds the provider's
# keys by OpenID discovery, fetches them (the plugin has no network access),
# keeps them fresh, and fetches them again when a token names a key it does
# not have: a key the provider rotates in is accepted at once.
policy "auth" {
  source = "../../plugins/auth"
  jwks "demo" {
    issuer      = "http://127.0.0.1:8090"
    min_refresh = "5s" # never fetched more often; 5s for the demo, 1m by default
  }
  config = {
    jwt_issuers            = "demo"
    "jwks.demo.algorithms" = "ES256"  # pinned: what the provider signs with, nothing else
    jwt_audience           = "orders" # tokens minted for another service are refused
    jwt_require_exp        = "true"
    claims                 = "sub,scope,realm_access" # passed on to the policies after this one
  }
}

# Placing an order needs the orders:write scope.
policy "writers" {
  source = "../../plugins/acl"
  config = { require_claims = "scope=orders:write" }
}

policy "ratelimit" {
  source = "../../plugins/ratelimit"
  # A token bucket per client the auth policy authenticated (its principal,
  # jwt:http://127.0.0.1:8090#alice): 8 requests at once, 2 a second after.
  config = { rate = "2", burst = "8" }
}

policy "canary" {
  source  = "../../plugins/split"
  config  = { targets = "orders.get.v1=90,orders.get.v2=10" }
  request = ["orders.get.v1", "orders.get.v2"]
}

# Handlers.

# The order events are durable: stored in the JetStream stream ORDERS before
# POST /orders answers 202 (and before a handler's publish returns), and
# delivered to each handler until it has handled them, across restarts.
plugin "orders-enrich" {
  source   = "../orders-enrich"
  subjects = ["orders.created"]
  publish  = ["orders.enriched", "orders.rejected"]
  durable {
    stream = "ORDERS"
  }
}

# orders-store and orders-notify both take every "orders.enriched" event:
# a subject served by two handlers must be marked shared on both. Each has
# its own consumer of the stream, so each gets every event.
plugin "orders-store" {
  source       = "orders-store"
  subjects     = ["orders.enriched"]
  kv_namespace = "orders"
  shared       = true
  durable {
    stream = "ORDERS"
  }
}

plugin "orders-notify" {
  source   = "../orders-notify"
  subjects = ["orders.enriched"]
  publish  = ["notifications.email"]
  config   = { default_recipient = "orders@example.com" }
  shared   = true
  durable {
    stream = "ORDERS"
  }
}

plugin "orders-get-v1" {
  source       = "orders-get"
  subjects     = ["orders.get.v1"]
  kv_namespace = "orders"
  config       = { version = "v1" }
}

plugin "orders-get-v2" {
  source       = "orders-get"
  subjects     = ["orders.get.v2"]
  kv_namespace = "orders"
  config       = { version = "v2" }
}

plugin "mailer" {
  source      = "mailer"
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

# HTTP routes.

http_route "POST /orders" {
  subject  = "orders.created"
  event    = true
  policies = ["auth", "writers", "ratelimit"]
}

http_route "GET /orders/{id}" {
  subject  = "orders.get"
  policies = ["auth", "canary"]
}

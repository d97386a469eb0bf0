# A production-style configuration for the examples: every plugin is built
# from source, and gets only the subjects it needs.
#
#   go run ./cmd/trellis run --config examples/trellis.hcl

data_dir  = "../.trellis"
log_level = "info"

nats {
  listen = "127.0.0.1:4222"
}

plugin "echo" {
  source    = "echo"
  subjects  = ["echo"]
  pool_size = 4
  timeout   = "2s"
}

plugin "greet" {
  source   = "greet"
  subjects = ["greet"]
  config   = { greeting = "Hello" }
}

plugin "orders-enrich" {
  source       = "orders-enrich"
  subjects     = ["orders.created"]
  publish      = ["orders.enriched", "orders.rejected"]
  memory_limit = "64MiB"
}

plugin "orders-notify" {
  source   = "orders-notify"
  subjects = ["orders.enriched"]
  publish  = ["notifications.email"]
  config   = { default_recipient = "orders@example.com" }
}

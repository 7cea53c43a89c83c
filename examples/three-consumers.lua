-- Three `junction consume` processes on one machine sharing the work as members of one
-- Kafka consumer group, with Kafka and Redis from `tools/services up` on 127.0.0.1.
--
--   build/junction api &                  # admin :8001
--   build/junction produce &              # admin :8002
--   build/junction analytics &            # admin :8004, receiver :8083
--   for i in 1 2 3; do
--     JUNCTION_ADMIN_LISTEN=127.0.0.1:801$i \
--       build/junction consume --config examples/three-consumers.lua &
--   done
--
-- Every process has its own admin server, so each member needs its own admin port (the
-- other roles have theirs by default): this file gives 127.0.0.1:8011 and
-- JUNCTION_ADMIN_LISTEN overrides it per process (an environment variable always wins
-- over the file). Everything else is shared:
-- * the same pipeline group_id, so Kafka splits customer_data's partitions among the
--   members (tools/services creates the topics with 6 partitions: two each here; a
--   seventh member would sit idle);
-- * the same Redis, so a record one member delivered is a duplicate for the others;
-- * each member reads the whole inventory_data topic for itself, so every member can
--   join its customers against every product.
-- In containers the same is `docker compose up --scale consumer=3` (examples/containers.lua).
return {
  log = { level = "info", format = "text" },
  admin = { listen = "127.0.0.1:8011" },
  kafka = { brokers = "127.0.0.1:9092" },
  redis = { host = "127.0.0.1", port = 6379 },
  consumer = {
    auto_offset_reset = "earliest",
    -- A third of the default each: three members together hold what one would.
    max_pending = 7000,
  },
  -- The seed's consumer, as in examples/local.lua.
  pipelines = {
    default = {
      group_id = "junction-consumer",
      transform = "scripts/join.lua",
      streams = { customers = { topic = "customer_data", changelog = "auto" } },
      tables = { products = "inventory_data" },
      sinks = { analytics = { type = "http", url = "http://127.0.0.1:8083/analytics" } },
    },
  },
}

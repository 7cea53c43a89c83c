-- junction's configuration inside containers (the image's default, and what compose.yaml
-- runs): every server listens on 0.0.0.0 so other containers and published ports reach
-- it, and the other services are found by their compose names:
--   Kafka kafka:29092 (the listener for containers; the host uses localhost:9092),
--   Redis redis:6379, the APIs crm-api:8081 and inventory:8082 (network aliases of the
--   one `api` service), the analytics receiver analytics:8083.
-- Every junction process has its own admin server on :8000 inside its own container.
-- `junction --help-config` lists every key with its default and environment variable;
-- environment variables override this file.
return {
  log = { level = "info", format = "text" },
  -- Beyond loopback, state-changing requests (reload, faults, DELETE) need admin.token:
  -- JUNCTION_ADMIN_TOKEN or JUNCTION_ADMIN_TOKEN_FILE (compose.yaml passes it on).
  admin = { listen = "0.0.0.0:8000" },
  scripts = {
    instruction_limit = 200000000,
    allow_exec = false,
    allow_write = false,
    watch = true, -- mount ./scripts over /usr/local/share/junction/scripts to edit them live
  },
  apis = {
    crm = {
      listen = env("JUNCTION_CRM_LISTEN", "0.0.0.0:8081"),
      script = "scripts/crm.lua",
      resource = "customers",
      singular = "Customer",
      count = env("JUNCTION_CUSTOMERS", 1000),
      seed = env("JUNCTION_SEED", 42),
    },
    inventory = {
      listen = env("JUNCTION_INVENTORY_LISTEN", "0.0.0.0:8082"),
      script = "scripts/inventory.lua",
      resource = "products",
      singular = "Product",
      count = env("JUNCTION_PRODUCTS", 10),
      seed = env("JUNCTION_SEED", 42),
    },
  },
  producer = { poll_interval_ms = 360 },
  sources = {
    crm = {
      url = env("JUNCTION_CRM_URL", "http://crm-api:8081/customers"),
      topic = "customer_data",
      script = "scripts/map_customers.lua",
      noun = "customer(s)",
    },
    inventory = {
      url = env("JUNCTION_INVENTORY_URL", "http://inventory:8082/products"),
      topic = "inventory_data",
      script = "scripts/map_products.lua",
      noun = "product(s)",
    },
  },
  kafka = { brokers = "kafka:29092" },
  redis = { host = "redis", port = 6379 },
  analytics = { listen = "0.0.0.0:8083" },
  pipelines = {
    default = {
      -- One group: `docker compose up --scale consumer=3` shares customer_data's
      -- partitions (compose.yaml creates the topics with 6) among three members.
      group_id = env("JUNCTION_GROUP_ID", "junction-consumer"),
      transform = "scripts/join.lua",
      streams = { customers = { topic = "customer_data", changelog = "auto" } },
      tables = { products = "inventory_data" },
      sinks = {
        analytics = { type = "http", url = env("ANALYTICS_URL", "http://analytics:8083/analytics") },
      },
    },
  },
}

-- junction's configuration for a local run: every service on 127.0.0.1.
-- `junction --help-config` lists every key with its default and environment variable;
-- keys left out keep their defaults, and environment variables override this file.
return {
  log = { level = "info", format = "text" },
  -- No admin.listen: each command has an admin port of its own (run 8000, api 8001,
  -- produce 8002, consume 8003, analytics 8004), so the roles started in terminals of
  -- their own with this file do not collide. JUNCTION_ADMIN_LISTEN sets one.
  scripts = {
    instruction_limit = 200000000, -- per script call; stops a runaway loop
    allow_exec = false,            -- os.execute / io.popen
    allow_write = false,           -- io.open(..., "w")
    watch = true,                  -- reload a script as soon as its file changes
  },
  -- The mock APIs `junction api` serves, by name (README, "The mock APIs"). The seed's
  -- environment variables still set them: JUNCTION_CRM_LISTEN, JUNCTION_CUSTOMERS, ...
  apis = {
    crm = {
      listen = env("JUNCTION_CRM_LISTEN", "127.0.0.1:8081"),
      script = env("JUNCTION_CRM_SCRIPT", "scripts/crm.lua"),
      resource = "customers", -- GET /customers, /customers/:id
      singular = "Customer",  -- {"error":"Customer not found"}
      count = env("JUNCTION_CUSTOMERS", 1000),
      seed = env("JUNCTION_SEED", 42),
      faults = { latency_ms = 0, error_rate = 0, error_status = 503, malformed_rate = 0 },
    },
    inventory = {
      listen = env("JUNCTION_INVENTORY_LISTEN", "127.0.0.1:8082"),
      script = env("JUNCTION_INVENTORY_SCRIPT", "scripts/inventory.lua"),
      resource = "products",
      singular = "Product",
      count = env("JUNCTION_PRODUCTS", 10),
      seed = env("JUNCTION_SEED", 42),
    },
  },
  -- What every API shares.
  api = {
    max_body_bytes = 1048576,
    request_timeout_ms = 10000,
    keepalive_timeout_ms = 60000,
  },
  -- The APIs `junction produce` polls, one topic each (README: "Sources"); the variables
  -- JUNCTION_CRM_URL and JUNCTION_INVENTORY_URL point them elsewhere.
  sources = {
    crm = {
      url = env("JUNCTION_CRM_URL", "http://127.0.0.1:8081/customers"),
      topic = "customer_data",
      script = "scripts/map_customers.lua",
      noun = "customer(s)", -- "Published 1000 customer(s) to topic customer_data"
    },
    inventory = {
      url = env("JUNCTION_INVENTORY_URL", "http://127.0.0.1:8082/products"),
      topic = "inventory_data",
      script = "scripts/map_products.lua",
      noun = "product(s)",
    },
  },
  -- What `junction consume` runs (README: "Pipelines"): customers joined with the
  -- products they reference, by the host (scripts/join.lua), posted to analytics.
  pipelines = {
    default = {
      group_id = env("JUNCTION_GROUP_ID", "junction-consumer"),
      transform = "scripts/join.lua",
      streams = { customers = { topic = "customer_data", changelog = "auto" } },
      tables = { products = "inventory_data" },
      sinks = {
        analytics = { type = "http", url = env("ANALYTICS_URL", "http://127.0.0.1:8083/analytics") },
      },
    },
  },
  kafka = { brokers = "127.0.0.1:9092" },
  redis = { host = "127.0.0.1", port = 6379 },
}

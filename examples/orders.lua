-- A second pipeline beside the seed's: orders (a stream, topic `order_data`) joined with
-- the customers table (customer_data) and the products table (inventory_data), delivered
-- to two sinks: the analytics receiver, with a bearer token, and the Kafka topic
-- `orders_enriched`, keyed by order id. The producer polls the orders API below (cursor
-- pages in an envelope, the bearer token from ORDERS_API_TOKEN) into order_data beside the
-- seed's two sources:
--   ORDERS_API_TOKEN=secret ANALYTICS_TOKEN=secret build/junction run --config examples/orders.lua
--
--   ORDERS_API_TOKEN=t ANALYTICS_TOKEN=secret build/junction consume --config examples/orders.lua
--
-- The token comes from ANALYTICS_TOKEN (or the file named by ANALYTICS_TOKEN_FILE, as
-- container secrets are mounted); start the receiver with the same token to check it:
--   JUNCTION_ANALYTICS_TOKEN=secret build/junction analytics
--
-- It also declares the mock APIs: the seed's CRM (:8081) and Inventory (:8082), and an
-- orders API (:8084, scripts/orders.lua: 50,000 orders of those customers and products)
-- that pages with a cursor in an envelope, 1000 orders a page, and asks for the bearer
-- token in ORDERS_API_TOKEN (or the file ORDERS_API_TOKEN_FILE names):
--   ORDERS_API_TOKEN=secret ANALYTICS_TOKEN=secret build/junction api --config examples/orders.lua
--   curl -H "Authorization: Bearer secret" localhost:8084/orders
-- Every secret the file names is needed by every role that loads it.
return {
  kafka = { brokers = env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092") },
  apis = {
    crm = {
      listen = env("JUNCTION_CRM_LISTEN", "127.0.0.1:8081"),
      script = "scripts/crm.lua",
      resource = "customers",
      singular = "Customer",
      count = env("JUNCTION_CUSTOMERS", 1000),
      seed = env("JUNCTION_SEED", 42),
    },
    inventory = {
      listen = env("JUNCTION_INVENTORY_LISTEN", "127.0.0.1:8082"),
      script = "scripts/inventory.lua",
      resource = "products",
      singular = "Product",
      count = env("JUNCTION_PRODUCTS", 10),
      seed = env("JUNCTION_SEED", 42),
    },
    orders = {
      listen = env("ORDERS_API_LISTEN", "127.0.0.1:8084"),
      script = "scripts/orders.lua", -- /orders, {"error":"Order not found"}
      count = env("ORDERS_COUNT", 50000),
      token = { env = "ORDERS_API_TOKEN" },
      paging = { style = "cursor", page_size = 1000 },
    },
  },
  sources = {
    crm = { url = env("JUNCTION_CRM_URL", "http://127.0.0.1:8081/customers"), topic = "customer_data",
            script = "scripts/map_customers.lua", noun = "customer(s)" },
    inventory = { url = env("JUNCTION_INVENTORY_URL", "http://127.0.0.1:8082/products"),
                  topic = "inventory_data", script = "scripts/map_products.lua", noun = "product(s)" },
    orders = {
      url = env("ORDERS_API_URL", "http://127.0.0.1:8084/orders?limit=1000"),
      headers = { Authorization = { env = "ORDERS_API_TOKEN", prefix = "Bearer " } },
      topic = "order_data",
      script = "scripts/map_orders.lua", -- stock.paging's cursor helper
      noun = "order(s)",
    },
  },
  pipelines = {
    {
      name = "orders",
      group_id = env("ORDERS_GROUP_ID", "junction-orders"),
      transform = "examples/transforms/enrich_orders.lua",
      -- Its own marks: the same Redis may serve the seed's pipeline too.
      dedupe = { prefix = "processed:orders:" },
      dead_letter_topic = env("ORDERS_DEAD_LETTER_TOPIC", "junction_dead_letter"),
      streams = { orders = env("ORDERS_TOPIC", "order_data") },
      tables = {
        customers = env("CUSTOMERS_TOPIC", "customer_data"),
        products = env("PRODUCTS_TOPIC", "inventory_data"),
      },
      sinks = {
        analytics = {
          type = "http",
          url = env("ANALYTICS_URL", "http://127.0.0.1:8083/analytics"),
          headers = { Authorization = { env = "ANALYTICS_TOKEN", prefix = "Bearer " } },
        },
        enriched = { type = "kafka", topic = env("ORDERS_ENRICHED_TOPIC", "orders_enriched"), key = "id" },
      },
    },
  },
}

-- A second pipeline beside the seed's: orders (a stream, topic `order_data`) joined with
-- the customers table (customer_data) and the products table (inventory_data), delivered
-- to two sinks: the analytics receiver, with a bearer token, and the Kafka topic
-- `orders_enriched`, keyed by order id. The producer polls an orders API (cursor pages in
-- an envelope, a bearer token from ORDERS_API_TOKEN) into order_data beside the seed's
-- two sources.
--
--   ORDERS_API_TOKEN=t ANALYTICS_TOKEN=secret build/junction consume --config examples/orders.lua
--
-- The token comes from ANALYTICS_TOKEN (or the file named by ANALYTICS_TOKEN_FILE, as
-- container secrets are mounted); start the receiver with the same token to check it:
--   JUNCTION_ANALYTICS_TOKEN=secret build/junction analytics
return {
  kafka = { brokers = env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092") },
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

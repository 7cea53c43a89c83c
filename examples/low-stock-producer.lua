-- A second `junction produce` that publishes only low-stock products, to a topic of
-- their own (examples/transforms/map_low_stock_only.lua skips the others). Run it beside
-- the usual producer; it polls the Inventory API only.
--
--   JUNCTION_LOW_STOCK=10 build/junction produce --config examples/low-stock-producer.lua
--
-- The threshold is JUNCTION_LOW_STOCK (default 5): stock below it is low. Its admin is
-- on 127.0.0.1:8010 so it can run beside the usual producer (whose admin is :8002) and
-- the other roles (8000 to 8004). The topic is created on first use when the broker
-- allows it (tools/services' Kafka does), or create it first like the others.
return {
  admin = { listen = "127.0.0.1:8010" },
  sources = {
    low_stock = {
      url = "http://127.0.0.1:8082/products",
      topic = "inventory_low_stock",
      script = "examples/transforms/map_low_stock_only.lua",
      noun = "low-stock product(s)",
    },
  },
  kafka = { brokers = "127.0.0.1:9092" },
}

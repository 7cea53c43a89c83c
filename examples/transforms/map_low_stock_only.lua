-- Producer map script that publishes only the products whose stock is low, for a
-- producer whose Inventory source writes to a low-stock topic of its own (the producer
-- publishes a source's records to that source's configured topic only, so routing means
-- a second producer: see examples/low-stock-producer.lua). Every other product is
-- skipped: map returns nil.
--
-- Same threshold and header as map_low_stock.lua: JUNCTION_LOW_STOCK (default 5), read
-- when the script loads; stock below it is low; published records carry
-- low_stock = "true".
--
-- The topic therefore says "this product is low (or still low, with a new stock)"; a
-- product that is restocked simply stops appearing, and nothing says so on this topic.
-- Consumers that must see it recover read inventory_data with map_low_stock.lua's
-- header instead.
local M = {}

local raw = junction.env("JUNCTION_LOW_STOCK", "5")
local number = tonumber(raw)
local threshold = number and math.tointeger(number)
if not threshold then
  error(string.format("JUNCTION_LOW_STOCK must be a whole number, got %q", raw), 0)
end
M.threshold = threshold

function M.map(product, ctx)
  if type(product.stock) ~= "number" or product.stock >= threshold then
    return nil
  end
  return {
    key = tostring(product.id),
    value = product,
    headers = { source = ctx.source, low_stock = "true" },
  }
end

return M

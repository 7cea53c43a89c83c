-- Producer map script for the Inventory source that flags low stock: every product is
-- published as scripts/map_products.lua publishes it, with one more header,
-- low_stock = "true" when its stock is below the threshold and "false" otherwise, so a
-- consumer of inventory_data can pick the low ones out without parsing the value.
--
-- The threshold is JUNCTION_LOW_STOCK (default 5), read when the script loads: a
-- product with stock 4 is low, one with 5 is not. A value that is not a whole number
-- stops the script from loading, so a typo fails loudly (the old version of the script,
-- if any, keeps running). A product without a numeric stock is not low.
--
-- Use it by pointing the Inventory source at this file:
--   sources = { inventory = { url = ..., topic = ...,
--                             script = "examples/transforms/map_low_stock.lua" } }
--
-- Routing low-stock products to a topic of their own: the producer publishes each
-- source's records to that source's configured topic only (sources.inventory.topic),
-- and a map script cannot choose another. So run a second producer whose Inventory
-- source has the low-stock topic as its topic and map_low_stock_only.lua (beside this
-- file) as its script: that script returns nil, which skips the record, for every
-- product that is not low. examples/low-stock-producer.lua is such a configuration.
local M = {}

local raw = junction.env("JUNCTION_LOW_STOCK", "5")
local number = tonumber(raw)
local threshold = number and math.tointeger(number)
if not threshold then
  error(string.format("JUNCTION_LOW_STOCK must be a whole number, got %q", raw), 0)
end
M.threshold = threshold

-- True when the product's stock is a number below the threshold.
function M.is_low(product)
  return type(product.stock) == "number" and product.stock < threshold
end

function M.map(product, ctx)
  return {
    key = tostring(product.id),
    value = product,
    headers = { source = ctx.source, low_stock = M.is_low(product) and "true" or "false" },
  }
end

return M

-- Producer map script for the Inventory source: one product from GET /products becomes
-- one record on inventory_data, keyed by the product id. Same contract as
-- map_customers.lua.
local M = {}

-- Records come as views (README, "Record views"): the API's text, read one field at a
-- time, and published by copying its members in key order instead of decoding and
-- encoding them.
M.views = true

function M.map(product, ctx)
  return {
    key = tostring(product.id),
    value = product,
    headers = { source = ctx.source },
  }
end

return M

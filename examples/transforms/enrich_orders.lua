-- Orders enriched with the customer who placed them and the products they contain: the
-- transform of the `orders` pipeline in examples/orders.lua. It reads one stream and two
-- tables:
--   on.orders(order, ctx)        -> the enriched order, to every sink
--   on.customers(customer, ctx)  -> nothing; keeps the customer for later orders
--   on.products(product, ctx)    -> nothing; keeps the product
-- An order {"id": "o-1", "customerId": 7, "items": [{"productId": "3", "quantity": 2}]}
-- becomes the same order with
--   "customer": {"id": 7, "name": ..., "email": ...},
--   "items": [{"productId": "3", "quantity": 2, "name": ..., "stock": ...}],
--   "total_quantity": 2, "enriched_at": "<ISO 8601 time>"
-- and `missing_customer` / `missing_product_ids` when a referenced entry is not in the
-- tables. The host reads both tables to their end before the first order, so an order
-- only misses what does not exist.
local state = ...
state.customers = state.customers or {}
state.products = state.products or {}
local customers, products = state.customers, state.products

local function key(id)
  if math.type(id) == "float" then return string.format("%d", id) end
  return tostring(id)
end

local M = { on = {} }

function M.on.customers(c)
  if c.id ~= nil then customers[key(c.id)] = { id = c.id, name = c.name, email = c.email } end
end

function M.on.products(p)
  if p.id ~= nil then products[key(p.id)] = { name = p.name, stock = p.stock } end
end

function M.on.orders(order, ctx)
  local c = order.customerId ~= nil and customers[key(order.customerId)]
  if c then order.customer = c else order.missing_customer = true end
  local total, missing = 0, nil
  for _, item in ipairs(order.items or {}) do
    local p = products[key(item.productId)]
    if p then
      item.name, item.stock = p.name, p.stock
    else
      missing = missing or {}
      missing[#missing + 1] = key(item.productId)
    end
    if math.type(item.quantity) then total = total + item.quantity end
  end
  order.total_quantity = total
  order.missing_product_ids = missing
  order.enriched_at = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ctx.now))
  return { order }
end

return M

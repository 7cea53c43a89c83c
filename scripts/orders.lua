-- Orders mock data: a third API beside the seed's CRM and Inventory (examples/orders.lua
-- serves it on :8084, behind a bearer token, 1000 orders a page).
--
-- Every order references a customer of the CRM (ids 1..1000, as scripts/crm.lua makes
-- them by default) and products of the Inventory (ids "1".."10"), the two tables
-- examples/transforms/enrich_orders.lua joins orders with. Same contract as crm.lua:
-- generate(opts) when the script loads, validate(record) on every record and every write.
local M = {}

M.id_type = "integer"
M.fields = { "id", "customerId", "items", "status", "createdAt" }
M.resource = "orders"
M.singular = "Order"
M.count = 50000

-- What the references point into: the seed's customers and products.
M.customers = 1000
M.products = 10

local STATUSES = { "placed", "paid", "shipped", "delivered", "cancelled" }
local known_status = {}
for _, s in ipairs(STATUSES) do
  known_status[s] = true
end

-- Orders are a minute apart from 2024-01-01T00:00:00Z, so createdAt grows with the id.
local EPOCH = 1704067200

-- Deterministic: the same seed gives the same data on every machine (lcg.lua).
local generator = require "lcg"

-- One to three distinct products, one to five of each.
local function items(pick)
  local out, first = {}, pick(M.products)
  for k = 1, pick(3) do
    local id = (first + k - 2) % M.products + 1
    out[k] = { productId = tostring(id), quantity = pick(5) }
  end
  return out
end

function M.generate(opts)
  local pick = generator(opts.seed)
  local out = {}
  for i = 1, opts.count do
    out[i] = {
      id = i,
      customerId = pick(M.customers),
      items = items(pick),
      status = STATUSES[pick(#STATUSES)],
      createdAt = os.date("!%Y-%m-%dT%H:%M:%SZ", EPOCH + 60 * i),
    }
  end
  return out
end

local function fail(fmt, ...)
  return nil, string.format(fmt, ...)
end

-- A value as a message shows it: JSON null arrives as a light userdata (junction.null),
-- which type() calls "userdata" and tostring() "userdata: (nil)".
local function shown(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "userdata" then return "null" end
  if type(v) == "table" then return "an array or object" end
  return tostring(v)
end

local function whole(v)
  return type(v) == "number" and math.tointeger(v) or nil
end

-- A list, not an object: as many keys as its length.
local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function check_item(i, item)
  if type(item) ~= "table" then
    return fail("items[%d] must be an object { productId, quantity }, got %s", i, shown(item))
  end
  local pid = item.productId
  if whole(pid) then
    item.productId = string.format("%d", pid)
  elseif type(pid) ~= "string" or pid == "" then
    return fail("items[%d].productId must be a product id string, got %s", i, shown(pid))
  end
  local q = whole(item.quantity)
  if not q or q < 1 then
    return fail("items[%d].quantity must be a whole number of 1 or more, got %s", i,
      shown(item.quantity))
  end
  item.quantity = q
  return item
end

-- Returns the record to store, or nil and a message naming the bad field.
function M.validate(o)
  local cid = whole(o.customerId)
  if not cid or cid < 1 then
    return fail("customerId must be a customer's id, a whole number of 1 or more, got %s",
      shown(o.customerId))
  end
  o.customerId = cid
  if type(o.items) ~= "table" or #o.items == 0 or not is_array(o.items) then
    return fail("items must be a non-empty array of { productId, quantity }")
  end
  for i, item in ipairs(o.items) do
    local ok, err = check_item(i, item)
    if not ok then return nil, err end
  end
  o.status = o.status or "placed"
  if not known_status[o.status] then
    return fail("status must be one of %s, got %s", table.concat(STATUSES, ", "),
      shown(o.status))
  end
  if o.createdAt ~= nil and (type(o.createdAt) ~= "string"
      or not o.createdAt:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$")) then
    return fail("createdAt must be a UTC time such as 2024-01-01T00:01:00Z, got %s",
      shown(o.createdAt))
  end
  return o
end

return M

-- CRM mock data: the customers the original CRM API served on :8081.
--
-- The host calls generate(opts) when the script loads or reloads and serves what it
-- returns; validate(record) checks every record it generates and every POST, PUT and
-- PATCH body. Edit this file while junction runs: the new data is served as soon as
-- the file is saved, or the old data stays if the new version fails.
local M = {}

M.id_type = "integer"
-- Key order of the JSON the API serves; keys not listed follow in sorted order.
M.fields = { "id", "name", "email", "phone", "productIds" }
-- Served at /customers and /customers/:id, with {"error":"Customer not found"}, and 1000
-- customers unless the config says otherwise (each is overridden by the API's config).
M.resource = "customers"
M.singular = "Customer"
M.count = 1000

-- Deterministic: the same seed gives the same data on every machine (lcg.lua).
local generator = require "lcg"

-- opts.count customers; customer i references product i mod 6 (as the original did,
-- so some reference product "0", which the inventory does not have) and even ids a
-- second product picked from the seed.
function M.generate(opts)
  local pick = generator(opts.seed)
  local out = {}
  for i = 1, opts.count do
    local ids = { tostring(i % 6) }
    if i % 2 == 0 then
      ids[2] = tostring(pick(10))
    end
    out[i] = {
      id = i,
      name = "Customer " .. i,
      email = "customer" .. i .. "@example.com",
      phone = string.format("0788%02d", i),
      productIds = ids,
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

-- Returns the record to store, or nil and a message naming the bad field.
function M.validate(c)
  if type(c.name) ~= "string" or c.name == "" then
    return fail("name must be a non-empty string, got %s", shown(c.name))
  end
  if type(c.email) ~= "string" or not c.email:find("^[^@%s]+@[^@%s]+$") then
    return fail("email must look like user@host, got %s", shown(c.email))
  end
  if c.phone ~= nil and type(c.phone) ~= "string" then
    return fail("phone must be a string, got %s", shown(c.phone))
  end
  c.productIds = c.productIds or {}
  if type(c.productIds) ~= "table" then
    return fail("productIds must be an array of product ids, got %s", shown(c.productIds))
  end
  local n = 0
  for _ in pairs(c.productIds) do n = n + 1 end
  if n ~= #c.productIds then
    return fail("productIds must be an array (a list), not an object")
  end
  for i, p in ipairs(c.productIds) do
    -- A whole number becomes its string; 1e300 is whole but has no integer to print.
    local whole = type(p) == "number" and math.tointeger(p)
    if whole then
      c.productIds[i] = string.format("%d", whole)
    elseif type(p) ~= "string" then
      return fail("productIds[%d] must be a product id string, got %s", i, shown(p))
    end
  end
  return c
end

return M

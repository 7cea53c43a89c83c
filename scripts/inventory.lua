-- Inventory mock data: the products the original Inventory API served on :8082.
-- Same contract as crm.lua: generate(opts) and validate(record).
local M = {}

M.id_type = "string"
M.fields = { "id", "name", "stock" }
M.resource = "products"
M.singular = "Product"
M.count = 10

local names = {
  "Inkweto", "Ishati", "Ipantalo", "Ingofero", "Isakoshi",
  "Igitenge", "Isabune", "Ikaramu", "Igikombe", "Amata",
}

-- Deterministic: the same seed gives the same data on every machine (lcg.lua).
local generator = require "lcg"

function M.generate(opts)
  local pick = generator(opts.seed)
  local out = {}
  for i = 1, opts.count do
    local base = names[(i - 1) % #names + 1]
    out[i] = {
      id = tostring(i),
      name = i <= #names and base or (base .. " " .. i),
      stock = pick(100) - 1,
    }
  end
  return out
end

-- A value as a message shows it: JSON null arrives as a light userdata (junction.null),
-- which type() calls "userdata" and tostring() "userdata: (nil)".
local function shown(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "userdata" then return "null" end
  if type(v) == "table" then return "an array or object" end
  return tostring(v)
end

function M.validate(p)
  if type(p.name) ~= "string" or p.name == "" then
    return nil, "name must be a non-empty string"
  end
  local stock = type(p.stock) == "number" and math.tointeger(p.stock) or nil
  if not stock then
    return nil, string.format("stock must be a whole number, got %s", shown(p.stock))
  end
  if stock < 0 then
    return nil, string.format("stock must not be negative, got %d", stock)
  end
  p.stock = stock
  return p
end

return M

-- Consumer merge script: joins customers with the products they reference.
--
-- The host calls, for every message it did not skip as a duplicate:
--   M.customer(customer, ctx) -> array of merged records to deliver (maybe empty)
--   M.product(product, ctx)   -> array of merged records to deliver (maybe empty)
-- and every few hundred milliseconds:
--   M.expire(ctx)             -> array of merged records whose hold ran out
-- ctx.now is the time in seconds, ctx.hold_ms and ctx.hold_max the hold limits from the
-- config (consumer.hold_ms, consumer.hold_max).
--
-- Policy:
-- * Each customer message yields one merged record: the customer's fields, `products`
--   = [{id, name, stock}, ...] resolved from productIds, and `merged_at`.
-- * A product change re-emits the merged records of every customer that references it
--   (an unchanged product re-emits nothing).
-- * A customer referencing a product not seen yet is held until every product it needs
--   has arrived, at most ctx.hold_ms, and at most ctx.hold_max customers are held (the
--   oldest is released first). A released customer is delivered with the products that
--   are known and `missing_product_ids` listing the others.
--
-- The state lives in a table the host owns and hands to every version of this script,
-- so a reload keeps the product catalogue, the index and the held customers.
local state = ...

state.products = state.products or {}     -- product id -> {id, name, stock}
state.customers = state.customers or {}   -- customer id -> latest customer seen
state.by_product = state.by_product or {} -- product id -> {customer id -> true}
state.held = state.held or {}             -- customer id -> time it was first held
state.held_count = state.held_count or 0

local M = {}

-- os.date is the costly part and changes once a second: keep the last one.
local last_second, last_prefix
local function iso(t)
  local s = math.floor(t)
  if s ~= last_second then
    last_second, last_prefix = s, os.date("!%Y-%m-%dT%H:%M:%S", s)
  end
  return last_prefix .. string.format(".%03dZ", math.floor((t - s) * 1000))
end

local function key(id)
  return math.type(id) == "float" and string.format("%d", id) or tostring(id)
end

-- Returns the merged record of customer c, and whether a product is missing.
local function merge(c, now)
  local out, products, missing = {}, {}, nil
  for k, v in pairs(c) do out[k] = v end
  for _, pid in ipairs(c.productIds or {}) do
    local p = state.products[key(pid)]
    if p then
      products[#products + 1] = { id = p.id, name = p.name, stock = p.stock }
    else
      missing = missing or {}
      missing[#missing + 1] = key(pid)
    end
  end
  out.products = products
  out.missing_product_ids = missing
  out.merged_at = iso(now)
  return out, missing ~= nil
end

local function unhold(id)
  if state.held[id] then
    state.held[id] = nil
    state.held_count = state.held_count - 1
  end
end

local function index(c, id)
  local old = state.customers[id]
  if old then
    for _, pid in ipairs(old.productIds or {}) do
      local set = state.by_product[key(pid)]
      if set then set[id] = nil end
    end
  end
  for _, pid in ipairs(c.productIds or {}) do
    local k = key(pid)
    local set = state.by_product[k]
    if not set then
      set = {}
      state.by_product[k] = set
    end
    set[id] = true
  end
  state.customers[id] = c
end

-- Releases the oldest held customers while more than hold_max are held.
local function over_capacity(ctx, out)
  while state.held_count > ctx.hold_max do
    local oldest, since = nil, math.huge
    for id, t in pairs(state.held) do
      if t < since then oldest, since = id, t end
    end
    unhold(oldest)
    out[#out + 1] = (merge(state.customers[oldest], ctx.now))
  end
  return out
end

function M.customer(c, ctx)
  local id = key(c.id)
  index(c, id)
  local rec, incomplete = merge(c, ctx.now)
  if incomplete and ctx.hold_ms > 0 and ctx.hold_max > 0 then
    if not state.held[id] then
      state.held[id] = ctx.now
      state.held_count = state.held_count + 1
    end
    return over_capacity(ctx, {})
  end
  unhold(id)
  return { rec }
end

local function same_product(a, b)
  return a and b and a.name == b.name and a.stock == b.stock
end

function M.product(p, ctx)
  local id = key(p.id)
  local before = state.products[id]
  state.products[id] = { id = p.id, name = p.name, stock = p.stock }
  if same_product(before, p) then return {} end
  local out = {}
  for cid in pairs(state.by_product[id] or {}) do
    local rec, incomplete = merge(state.customers[cid], ctx.now)
    -- A held customer leaves the hold only once nothing is missing.
    if not (state.held[cid] and incomplete) then
      unhold(cid)
      out[#out + 1] = rec
    end
  end
  return out
end

function M.expire(ctx)
  local out = {}
  local deadline = ctx.now - ctx.hold_ms / 1000
  for id, since in pairs(state.held) do
    if since <= deadline then out[#out + 1] = id end
  end
  for i, id in ipairs(out) do
    unhold(id)
    out[i] = (merge(state.customers[id], ctx.now))
  end
  return over_capacity(ctx, out)
end

-- For /api/status and tests.
function M.stats()
  local n = 0
  for _ in pairs(state.products) do n = n + 1 end
  return { products = n, held = state.held_count }
end

return M

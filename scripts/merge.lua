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

-- customer() is the consumer's hot path (one call per customer message, at up to 100,000
-- a second), so the code it runs avoids calls where it can:
-- * Every key in state.products and state.by_product is a string, so a hit on a raw
--   productIds entry means it is already its key: key() runs only for numbers and
--   misses.
-- * Loops index productIds up to the first nil, as ipairs does, without its calls.
-- * The index is left alone when a customer's productIds did not change.
-- The state tables are created once and only filled afterwards, so locals can hold them.
local products, customers, by_product, held = state.products, state.customers,
  state.by_product, state.held
local pairs, ipairs, tostring = pairs, ipairs, tostring
local math_type, floor, huge = math.type, math.floor, math.huge
local format, date = string.format, os.date

local M = {}

-- os.date is the costly part and changes once a second: keep the last one. ctx.now
-- differs on every call, but most calls of a burst fall in the same millisecond, so
-- merge() keeps the whole string too, and comes here only when the millisecond changed.
local last_second, last_prefix, iso_second, iso_ms, iso_text
local function iso(t)
  local s = floor(t)
  if s ~= last_second then
    last_second, last_prefix = s, date("!%Y-%m-%dT%H:%M:%S", s)
  end
  return last_prefix .. format(".%03dZ", floor((t - s) * 1000))
end

local function key(id)
  local t = math_type(id)
  -- .. gives an integer the same digits as tostring, without its metamethod look-up.
  if t == "integer" then return id .. "" end
  return t == "float" and format("%d", id) or tostring(id)
end

local NO_IDS = {}

-- Returns the merged record of customer c, and whether a product is missing.
local function merge(c, now)
  local out, list, missing, n = {}, {}, nil, 0
  for k, v in pairs(c) do out[k] = v end
  local pids = c.productIds or NO_IDS
  local i, pid = 1, pids[1]
  while pid or pid == false do
    local p = products[pid]
    if not p then
      local k = key(pid)
      p = products[k]
      if not p then
        missing = missing or {}
        missing[#missing + 1] = k
      end
    end
    if p then
      n = n + 1
      list[n] = { id = p.id, name = p.name, stock = p.stock }
    end
    i = i + 1
    pid = pids[i]
  end
  out.products = list
  out.missing_product_ids = missing
  -- The same second and millisecond as iso()'s math.floor, with // (no call).
  local s = now // 1
  local ms = (now - s) * 1000 // 1
  if ms ~= iso_ms or s ~= iso_second then
    iso_second, iso_ms, iso_text = s, ms, iso(now)
  end
  out.merged_at = iso_text
  return out, missing ~= nil
end

local function unhold(id)
  if held[id] then
    held[id] = nil
    state.held_count = state.held_count - 1
  end
end

-- Whether two productIds lists hold equal ids in the same order (equal ids have equal
-- keys, so the index would not change).
local function same_ids(a, b)
  -- The same table may have been changed in place since: re-index to be safe.
  if a == b or not (a and b) then return false end
  local i, x = 1, a[1]
  while x or x == false do
    if x ~= b[i] then return false end
    i = i + 1
    x = a[i]
  end
  return b[i] == nil
end

local function product_set(pid)
  local k = key(pid)
  local set = by_product[k]
  if not set then
    set = {}
    by_product[k] = set
  end
  return set
end

-- Takes customer id out of the product sets of the productIds pids.
local function unindex(pids, id)
  local i, pid = 1, pids[1]
  while pid or pid == false do
    local set = by_product[pid] or by_product[key(pid)]
    if set then set[id] = nil end
    i = i + 1
    pid = pids[i]
  end
end

-- Releases the oldest held customers while more than hold_max are held.
local function over_capacity(ctx, out)
  while state.held_count > ctx.hold_max do
    local oldest, since = nil, huge
    for id, t in pairs(held) do
      if t < since then oldest, since = id, t end
    end
    unhold(oldest)
    out[#out + 1] = (merge(customers[oldest], ctx.now))
  end
  return out
end

function M.customer(c, ctx)
  local id = c.id
  if math_type(id) == "integer" then id = id .. "" else id = key(id) end
  -- The index: the sets of the products c references get c's id, those of the products
  -- only its previous version referenced lose it. Nothing changes if productIds did not.
  local pids = c.productIds
  local old = customers[id]
  if not (old and same_ids(old.productIds, pids)) then
    if old and old.productIds then unindex(old.productIds, id) end
    if pids then
      local i, pid = 1, pids[1]
      while pid or pid == false do
        local set = by_product[pid] or product_set(pid)
        set[id] = true
        i = i + 1
        pid = pids[i]
      end
    end
  end
  customers[id] = c
  local now = ctx.now
  local rec, incomplete = merge(c, now)
  if incomplete and ctx.hold_ms > 0 and ctx.hold_max > 0 then
    if not held[id] then
      held[id] = now
      state.held_count = state.held_count + 1
    end
    return over_capacity(ctx, {})
  end
  if held[id] then unhold(id) end
  return { rec }
end

local function same_product(a, b)
  return a and b and a.name == b.name and a.stock == b.stock
end

function M.product(p, ctx)
  local id = key(p.id)
  local before = products[id]
  products[id] = { id = p.id, name = p.name, stock = p.stock }
  if same_product(before, p) then return {} end
  local out = {}
  for cid in pairs(by_product[id] or {}) do
    local rec, incomplete = merge(customers[cid], ctx.now)
    -- A held customer leaves the hold only once nothing is missing.
    if not (held[cid] and incomplete) then
      unhold(cid)
      out[#out + 1] = rec
    end
  end
  return out
end

function M.expire(ctx)
  local out = {}
  local deadline = ctx.now - ctx.hold_ms / 1000
  for id, since in pairs(held) do
    if since <= deadline then out[#out + 1] = id end
  end
  for i, id in ipairs(out) do
    unhold(id)
    out[i] = (merge(customers[id], ctx.now))
  end
  return over_capacity(ctx, out)
end

-- For /api/status and tests.
function M.stats()
  local n = 0
  for _ in pairs(products) do n = n + 1 end
  return { products = n, held = state.held_count }
end

return M

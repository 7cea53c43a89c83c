-- Consumer merge script: joins customers with the products they reference.
--
-- The seed's pipeline reads the stream `customers` and the table `products`; the host
-- calls, for every message it did not skip as a duplicate:
--   M.on.customers(customer, ctx) -> array of merged records to deliver (maybe empty)
--   M.on.products(product, ctx)   -> array of merged records to deliver (maybe empty)
-- every few hundred milliseconds:
--   M.timer(ctx)                  -> array of merged records whose hold ran out
-- and, to keep the join across restarts and rebalances:
--   M.restore.customers(customer, ctx)  a customer replayed from the changelog when its
--                                       partition (ctx.partition) is assigned
--   M.revoke.customers(partitions, ctx) forget every customer: some partitions went to
--                                       another member, and the host replays those this
--                                       member still owns
-- (M.customer, M.product and M.expire are the same functions, for scripts that wrap
-- them.)
-- ctx.now is the time in seconds, ctx.hold_ms and ctx.hold_max the hold limits from the
-- config (consumer.hold_ms, consumer.hold_max). ctx.hold() tells the host that the
-- customer of this call is held: its message then waits for a later record with the
-- same id. Any other message is settled by the host once the records its call returned
-- are delivered (at once when it returned none), whatever their ids.
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
state.customers = state.customers or {}   -- customer id -> latest customer seen, as JSON
state.by_product = state.by_product or {} -- product id -> {customer id -> true}
state.held = state.held or {}             -- customer id -> time it was first held
state.held_count = state.held_count or 0
state.catalogue_version = state.catalogue_version or 0 -- counts product messages

-- customer() is the consumer's hot path (one call per customer message, at up to 100,000
-- a second), so this script avoids the allocations and calls that used to dominate it:
-- * The merged record is the customer's own table (the host decodes a fresh one per
--   message and only encodes what comes back) with products, missing_product_ids and
--   merged_at set on it; the latest one is kept in state.customers and merged again in
--   place on a re-emission. Every merge sets all three, so none goes stale.
-- * A product's table in state.products is replaced on every product message, never
--   changed, so records reference it instead of copying it, and customers with the same
--   productIds share one products list (see `lists`).
-- * Every key in state.products and state.by_product is a string, so a hit on a raw
--   productIds entry means it is already its key: key() runs only for numbers and
--   misses.
-- * Loops index productIds up to the first nil, as ipairs does, without its calls.
-- * The index is left alone when a customer's productIds did not change.
-- Hence the records returned, and the array customer() returns when it delivers one, are
-- only valid until the next call: the host encodes them before it makes one.
-- The state tables are created once and only filled afterwards, so locals can hold them.
local products, customers, by_product, held = state.products, state.customers,
  state.by_product, state.held
local pairs, ipairs, tostring = pairs, ipairs, tostring
local math_type, floor, huge = math.type, math.floor, math.huge
local format, date = string.format, os.date
local json_decode, json_encode = junction.json_decode, junction.json_encode
local record_view = junction.record_view

-- Customers are kept as the JSON text they came in (ctx.json()), not as tables: a
-- fraction of the memory (200,000 customers fit in tens of MiB, not hundreds), and
-- nothing for the collector to walk. A customer is decoded again only when a product
-- change or a hold running out re-emits it, or when a new version of it arrives. A
-- version of this script from before kept tables: both are read.
local function stored(v)
  if type(v) == "string" then
    -- As a view when the text is canonical (what the host hands in): a re-emission then
    -- copies the customer's fields instead of decoding and encoding them.
    return record_view and record_view(v) or (json_decode(v))
  end
  return v
end

local function text_of(c, ctx)
  local t = ctx and ctx.json and ctx.json()
  return t or json_encode(c)
end

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

-- What customer() returns in the common case: the host encodes the record at once, so one
-- array serves every call.
local ONE = {}

-- Products lists by productIds sequence: lists[pid1][pid2]...[LIST] = {p1, p2, ...},
-- only for sequences of string ids that are all known. Any product message empties it
-- (state.catalogue_version tells every loaded version of this script), and so does
-- holding MAX_LISTS lists, which bounds its memory.
local lists, nlists, lists_version, MAX_LISTS = {}, 0, nil, 10000
local LIST = {} -- a key no productIds entry can be

local function cache_list(pids, list)
  if nlists >= MAX_LISTS then lists, nlists = {}, 0 end
  local node, i, pid = lists, 1, pids[1]
  while pid do
    local next_node = node[pid]
    if not next_node then
      next_node = {}
      node[pid] = next_node
    end
    node = next_node
    i = i + 1
    pid = pids[i]
  end
  if not node[LIST] then nlists = nlists + 1 end
  node[LIST] = list
end

-- Builds the products list of pids; returns it and the ids of the missing products.
local function build_list(pids)
  local list, missing, n, i, pid, shareable = {}, nil, 0, 1, pids[1], true
  while pid or pid == false do
    local p = products[pid]
    if not p then
      shareable = false -- a number, or not known yet
      local k = key(pid)
      p = products[k]
      if not p then
        missing = missing or {}
        missing[#missing + 1] = k
      end
    end
    if p then
      n = n + 1
      list[n] = p
    end
    i = i + 1
    pid = pids[i]
  end
  if shareable then cache_list(pids, list) end
  return list, missing
end

-- Sets customer c's merged fields on c itself; returns whether a product is missing.
-- pids: c.productIds when the caller has read it already.
local function merge(c, now, pids)
  pids = pids or c.productIds or NO_IDS
  if state.catalogue_version ~= lists_version then
    lists, nlists, lists_version = {}, 0, state.catalogue_version
  end
  local list, missing = lists, nil
  local i, pid = 1, pids[1]
  while list and (pid or pid == false) do
    list = list[pid]
    i = i + 1
    pid = pids[i]
  end
  list = list and list[LIST]
  if not list then list, missing = build_list(pids) end
  c.products = list
  -- Storing nil under a key the table lacks is not free: skip it in the common case.
  if missing or c.missing_product_ids ~= nil then c.missing_product_ids = missing end
  -- The same second and millisecond as iso()'s math.floor, with // (no call).
  local s = now // 1
  local ms = (now - s) * 1000 // 1
  if ms ~= iso_ms or s ~= iso_second then
    iso_second, iso_ms, iso_text = s, ms, iso(now)
  end
  c.merged_at = iso_text
  return missing ~= nil
end

-- A held customer's table, kept until it is released so the release does not decode
-- its text again (bounded by hold_max). Not in state: a reload decodes instead.
local held_table = {}

-- The latest version of customer id as a table.
local function customer_of(id)
  return held_table[id] or stored(customers[id])
end

local function unhold(id)
  if held[id] then
    held[id] = nil
    held_table[id] = nil
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
    local c = customer_of(oldest)
    merge(c, ctx.now)
    out[#out + 1] = c
  end
  return out
end

-- Keeps customer c (id its key) and indexes it by the products it references: the sets
-- of those products get c's id, those of the products only its previous version
-- referenced lose it. Nothing changes if productIds did not.
local function keep(c, id, ctx)
  local pids = c.productIds
  local old = customers[id]
  if old then old = stored(old) end
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
  customers[id] = text_of(c, ctx)
end

function M.customer(c, ctx)
  local id = c.id
  if math_type(id) == "integer" then id = id .. "" else id = key(id) end
  -- keep(c, id), written out: this is the hot path, and a call costs more than its body
  -- when productIds did not change.
  local pids = c.productIds
  local old = customers[id]
  if old then old = stored(old) end
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
  customers[id] = text_of(c, ctx)
  local now = ctx.now
  if merge(c, now, pids) and ctx.hold_ms > 0 and ctx.hold_max > 0 then
    -- Tells the host this customer's message waits for a later record with its id.
    ctx.hold()
    held_table[id] = c
    if not held[id] then
      held[id] = now
      state.held_count = state.held_count + 1
    end
    return over_capacity(ctx, {})
  end
  if held[id] then unhold(id) end
  ONE[1] = c
  return ONE
end

local function same_product(a, b)
  return a and b and a.name == b.name and a.stock == b.stock
end

function M.product(p, ctx)
  local id = key(p.id)
  local before = products[id]
  state.catalogue_version = state.catalogue_version + 1
  -- A new value, never an update of the old one: delivered records and lists share it.
  -- As a record view of its JSON text, a product is copied into every merged record
  -- that lists it instead of being encoded again each time.
  local entry = { id = p.id, name = p.name, stock = p.stock }
  if record_view then entry = record_view(json_encode(entry)) or entry end
  products[id] = entry
  if same_product(before, p) then return {} end
  local out = {}
  for cid in pairs(by_product[id] or {}) do
    local c = customer_of(cid)
    local incomplete = merge(c, ctx.now)
    -- A held customer leaves the hold only once nothing is missing.
    if not (held[cid] and incomplete) then
      unhold(cid)
      out[#out + 1] = c
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
    local c = customer_of(id)
    merge(c, ctx.now)
    out[i] = c
  end
  return over_capacity(ctx, out)
end

-- A customer replayed from the changelog: kept and indexed, not delivered (it was when
-- it first came).
function M.restore_customer(c, ctx)
  local id = c.id
  if id == nil then return end
  keep(c, key(id), ctx)
end

-- Forgets every customer (the tables stay): the host calls it when partitions went to
-- another member, which answers for them from now on, and then replays the partitions
-- this member kept. Tracking each customer's partition to forget only some would cost
-- every customer message a table entry; a rebalance is rare.
function M.forget()
  for id in pairs(customers) do customers[id] = nil end
  for pid in pairs(by_product) do by_product[pid] = nil end
  for id in pairs(held) do held[id] = nil end
  for id in pairs(held_table) do held_table[id] = nil end
  state.held_count = 0
end

M.on = { customers = M.customer, products = M.product }
-- Records come as views (record_view.h in the host): the customer's text, decoded one
-- field at a time as this script reads it, and encoded back by copying the fields it did
-- not touch. merge() reads id and productIds and sets three fields, so most of a
-- customer never becomes Lua strings. Everything here also works on plain tables (specs,
-- stored customers decoded by json_decode).
M.views = true
M.timer = M.expire
M.restore = { customers = M.restore_customer }
M.revoke = { customers = M.forget }

-- For /api/status and tests.
function M.stats()
  local n = 0
  for _ in pairs(products) do n = n + 1 end
  return { products = n, held = state.held_count }
end

return M

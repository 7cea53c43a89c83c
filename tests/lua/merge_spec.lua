-- scripts/merge.lua: the consumer's merge script. It is loaded with a state table the
-- host owns (passed as `...`), so a reload (loading the chunk again with the same table)
-- keeps the product catalogue, the customer index and the held customers.
-- customer(c, ctx), product(p, ctx) and expire(ctx) return arrays of merged records;
-- ctx = {now = seconds, hold_ms = ..., hold_max = ..., hold = function}: the script calls
-- ctx.hold() when it holds the customer of a customer() call (the host then keeps that
-- message waiting for a later record with its id); here hold counts its calls.
local loader = require "script_loader"
local junction = require "junction"

local PATH = "scripts/merge.lua"
local HOLD_MS = 5000

local holds = 0
local function ctx(now, hold_ms, hold_max)
  return { now = now, hold_ms = hold_ms or HOLD_MS, hold_max = hold_max or 100,
           hold = function() holds = holds + 1 return true end }
end

local function product(id, stock, name)
  return { id = id, name = name or ("Product " .. id), stock = stock }
end

local function customer(id, product_ids, extra)
  local c = {
    id = id,
    name = "Customer " .. tostring(id),
    email = "customer" .. tostring(id) .. "@example.com",
    productIds = product_ids,
  }
  for k, v in pairs(extra or {}) do
    c[k] = v
  end
  return c
end

-- Decodes as the consumer does (junction.json_decode: integers stay integers).
local function via_json(v)
  local out, err = junction.json_decode(junction.json_encode(v))
  assert(out ~= nil, err)
  return out
end

-- A products list as plain tables: merge.lua keeps each product as a record view (its
-- JSON text), which reads like a table but is not one for assert.are.same.
local function plain(v)
  return junction.json_decode(junction.json_encode(v))
end

-- The ids of the customers in a result, as strings, sorted.
local function ids(records)
  local out = {}
  for i, r in ipairs(records) do
    out[i] = tostring(math.tointeger(r.id) or r.id)
  end
  table.sort(out)
  return out
end

local function by_id(records, id)
  for _, r in ipairs(records) do
    if r.id == id then
      return r
    end
  end
  return nil
end

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("merge.lua", function()
  local state, m

  before_each(function()
    state = {}
    m = loader.load(PATH, state)
  end)

  it("defines the pipeline hooks: on.customers, on.products, timer, restore, revoke", function()
    assert.are.equal(m.customer, m.on.customers)
    assert.are.equal(m.product, m.on.products)
    assert.are.equal(m.expire, m.timer)
    assert.is_function(m.restore.customers)
    assert.is_function(m.revoke.customers)
  end)

  describe("join state across restarts and rebalances", function()
    local function with_partition(now, partition)
      local x = ctx(now)
      x.partition = partition
      return x
    end

    it("a restored customer is re-emitted by a product change, not by its restore", function()
      -- A new process: products come from the table, customers from the changelog.
      m.product(product("1", 10), ctx(1))
      m.product(product("2", 20), ctx(1))
      assert.is_nil(m.restore.customers(via_json(customer(7, { "1" })), with_partition(1, 0)))
      assert.is_nil(m.restore.customers(via_json(customer(8, { "2" })), with_partition(1, 3)))
      local out = m.product(product("1", 11), ctx(2))
      assert.are.same({ "7" }, ids(out))
      assert.are.same({ { id = "1", name = "Product 1", stock = 11 } }, plain(out[1].products))
      assert.are.same({ "8" }, ids(m.product(product("2", 21), ctx(2))))
    end)

    it("revoke forgets every customer and keeps the catalogue", function()
      m.product(product("1", 10), ctx(1))
      m.customer(customer(1, { "1" }), with_partition(1, 0))
      m.restore.customers(customer(3, { "1" }), with_partition(1, 2))
      m.revoke.customers({ 0, 2 }, with_partition(2))
      assert.are.same({}, m.product(product("1", 12), ctx(3)))
      -- the host then replays what this member kept
      m.restore.customers(customer(1, { "1" }), with_partition(4, 0))
      assert.are.same({ "1" }, ids(m.product(product("1", 13), ctx(6))))
      local r = m.customer(customer(5, { "1" }), with_partition(7, 1))[1]
      assert.are.same({ { id = "1", name = "Product 1", stock = 13 } }, plain(r.products))
    end)

    it("a held customer is forgotten with the others", function()
      m.customer(customer(4, { "9" }), with_partition(1, 2))
      assert.are.equal(1, m.stats().held)
      m.revoke.customers({ 2 }, with_partition(2))
      assert.are.equal(0, m.stats().held)
      assert.are.same({}, m.expire(ctx(100)))
    end)
  end)

  it("defines customer, product, expire and stats", function()
    assert.is_function(m.customer)
    assert.is_function(m.product)
    assert.is_function(m.expire)
    assert.is_function(m.stats)
    assert.are.same({ products = 0, held = 0 }, m.stats())
  end)

  describe("join", function()
    it("merges a customer with its known products, in productIds order", function()
      assert.are.same({}, m.product(product("1", 10, "Inkweto"), ctx(1)))
      assert.are.same({}, m.product(product("2", 20, "Ishati"), ctx(1)))
      local c = customer(1, { "2", "1" }, { phone = "078801" })
      local out = m.customer(c, ctx(1700000000.25))
      assert.are.equal(1, #out)
      local r = out[1]
      assert.are.equal(1, r.id)
      assert.are.equal("Customer 1", r.name)
      assert.are.equal("customer1@example.com", r.email)
      assert.are.equal("078801", r.phone)
      assert.are.same({ "2", "1" }, r.productIds)
      assert.are.same({
        { id = "2", name = "Ishati", stock = 20 },
        { id = "1", name = "Inkweto", stock = 10 },
      }, plain(r.products))
      assert.is_nil(r.missing_product_ids)
      assert.are.equal("2023-11-14T22:13:20.250Z", r.merged_at)
      -- and nothing else
      assert.are.same({
        id = 1,
        name = "Customer 1",
        email = "customer1@example.com",
        phone = "078801",
        productIds = { "2", "1" },
        products = {
          { id = "2", name = "Ishati", stock = 20 },
          { id = "1", name = "Inkweto", stock = 10 },
        },
        merged_at = "2023-11-14T22:13:20.250Z",
      }, plain(r))
    end)

    it("stamps merged_at as ISO-8601 UTC with milliseconds", function()
      m.product(product("1", 5), ctx(0))
      local r = m.customer(customer(1, { "1" }), ctx(0))[1]
      assert.are.equal("1970-01-01T00:00:00.000Z", r.merged_at)
      r = m.customer(customer(2, { "1" }), ctx(os.time() + 0.5))[1]
      assert.truthy(r.merged_at:match(ISO))
      assert.are.equal(".500Z", r.merged_at:sub(-5))
    end)

    it("yields exactly one record for products 1 and 2 given as {\"1\", \"2\"}", function()
      m.product(product("1", 10), ctx(1))
      m.product(product("2", 20), ctx(1))
      local out = m.customer(customer(1, { "1", "2" }), ctx(2))
      assert.are.equal(1, #out)
      assert.are.same({ "1", "2" }, {
        out[1].products[1].id,
        out[1].products[2].id,
      })
      assert.are.same({ products = 2, held = 0 }, m.stats())
    end)

    it("re-emits every customer referencing a changed product, and only those", function()
      m.product(product("1", 10), ctx(1))
      m.product(product("2", 20), ctx(1))
      m.product(product("3", 30), ctx(1))
      m.customer(customer(1, { "1", "2" }), ctx(2))
      m.customer(customer(2, { "2" }), ctx(2))
      m.customer(customer(3, { "3" }), ctx(2))
      m.customer(customer(4, { "1", "3" }), ctx(2))

      local out = m.product(product("2", 19), ctx(3))
      assert.are.same({ "1", "2" }, ids(out))
      local r1 = by_id(out, 1)
      assert.are.same({
        { id = "1", name = "Product 1", stock = 10 },
        { id = "2", name = "Product 2", stock = 19 },
      }, plain(r1.products))
      assert.is_nil(r1.missing_product_ids)
      assert.are.same({ { id = "2", name = "Product 2", stock = 19 } }, plain(by_id(out, 2).products))
      assert.truthy(r1.merged_at:match(ISO))

      out = m.product(product("3", 29), ctx(4))
      assert.are.same({ "3", "4" }, ids(out))
      assert.are.equal(29, by_id(out, 4).products[2].stock)
    end)

    it("re-emits on a name change too", function()
      m.product(product("1", 10, "Old"), ctx(1))
      m.customer(customer(1, { "1" }), ctx(1))
      local out = m.product(product("1", 10, "New"), ctx(2))
      assert.are.equal(1, #out)
      assert.are.equal("New", out[1].products[1].name)
    end)

    it("re-emits nothing for an unchanged product", function()
      m.product(product("1", 10), ctx(1))
      m.customer(customer(1, { "1" }), ctx(1))
      m.customer(customer(2, { "1" }), ctx(1))
      assert.are.same({}, m.product(product("1", 10), ctx(2)))
      -- a copy arriving through JSON is still the same product
      assert.are.same({}, m.product(via_json(product("1", 10)), ctx(3)))
      assert.are.equal(2, #m.product(product("1", 11), ctx(4)))
    end)

    it("re-emits nothing for a product nobody references", function()
      m.customer(customer(1, { "1" }), ctx(1, 0)) -- hold_ms 0: delivered at once
      assert.are.same({}, m.product(product("9", 1), ctx(2)))
      assert.are.same({}, m.product(product("9", 2), ctx(3)))
    end)
  end)

  describe("records", function()
    -- Every merge, a re-emission of a stored customer included, gives exactly the fields
    -- of that customer merged afresh: nothing left from an earlier merge or catalogue.

    it("overrides the customer's own products, missing_product_ids and merged_at", function()
      m.product(product("1", 10), ctx(1))
      local c = customer(1, { "1" }, {
        products = "mine",
        missing_product_ids = { "x" },
        merged_at = "then",
      })
      local r = m.customer(c, ctx(0))[1]
      assert.are.same({ { id = "1", name = "Product 1", stock = 10 } }, plain(r.products))
      assert.is_nil(r.missing_product_ids)
      assert.are.equal("1970-01-01T00:00:00.000Z", r.merged_at)
    end)

    it("drops missing_product_ids when a product arrives after an incomplete delivery", function()
      local r = m.customer(customer(1, { "1", "2" }), ctx(1, 0))[1] -- hold_ms 0
      assert.are.same({ "1", "2" }, r.missing_product_ids)
      r = m.product(product("1", 10), ctx(2))[1]
      assert.are.same({ "2" }, r.missing_product_ids)
      assert.are.same({ { id = "1", name = "Product 1", stock = 10 } }, plain(r.products))
      r = m.product(product("2", 20), ctx(3))[1]
      assert.is_nil(r.missing_product_ids)
      assert.are.equal(2, #r.products)
    end)

    it("drops missing_product_ids when a product arrives after the hold ran out", function()
      m.customer(customer(1, { "9" }), ctx(10))
      local r = m.expire(ctx(10 + HOLD_MS / 1000))[1]
      assert.are.same({ "9" }, r.missing_product_ids)
      local out = m.product(product("9", 1), ctx(20))
      assert.are.equal(1, #out)
      assert.are.same({
        id = 1,
        name = "Customer 1",
        email = "customer1@example.com",
        productIds = { "9" },
        products = { { id = "9", name = "Product 9", stock = 1 } },
        merged_at = "1970-01-01T00:00:20.000Z",
      }, plain(out[1]))
    end)

    it("gives customers merged after a product message its new version", function()
      m.product(product("1", 10), ctx(1))
      assert.are.equal(10, m.customer(customer(1, { "1" }), ctx(2))[1].products[1].stock)
      assert.are.equal(10, m.customer(customer(2, { "1" }), ctx(2))[1].products[1].stock)
      m.product(product("1", 11), ctx(3))
      assert.are.equal(11, m.customer(customer(3, { "1" }), ctx(4))[1].products[1].stock)
      -- the same name and stock re-emit nothing, but the id as given is the latest one
      m.product(product(1, 11), ctx(5))
      local r = m.customer(customer(4, { "1" }), ctx(6))[1]
      assert.are.same({ { id = 1, name = "Product 1", stock = 11 } }, plain(r.products))
    end)

    it("gives each customer the products of its own productIds", function()
      m.product(product("1", 10), ctx(1))
      m.product(product("2", 20), ctx(1))
      local function stocks(pids)
        local r = m.customer(customer(1, pids), ctx(2, 0))[1]
        local out = {}
        for i, p in ipairs(r.products) do out[i] = p.stock end
        return out
      end
      assert.are.same({ 10, 20 }, stocks({ "1", "2" }))
      assert.are.same({ 10 }, stocks({ "1" }))
      assert.are.same({ 20, 10 }, stocks({ "2", "1" }))
      assert.are.same({ 10, 20 }, stocks({ "1", "2" }))
      assert.are.same({}, stocks({}))
      assert.are.same({ 10, 10 }, stocks({ "1", "1" }))
      assert.are.same({ 10 }, stocks({ "1", "3" }))
    end)

    it("goes on past a false entry in productIds, as ipairs does", function()
      m.product(product("1", 10), ctx(1))
      m.product(product("2", 20), ctx(1))
      local r = m.customer(customer(1, { "1", false, "2" }), ctx(2, 0))[1]
      assert.are.equal(2, #r.products)
      assert.are.same({ "false" }, r.missing_product_ids)
    end)
  end)

  describe("hold", function()
    it("holds a customer referencing an unknown product until it arrives", function()
      m.product(product("1", 10), ctx(1))
      holds = 0
      assert.are.same({}, m.customer(customer(5, { "1", "2" }), ctx(2)))
      assert.are.equal(1, holds) -- the host is told, so the message waits for id 5
      assert.are.same({ products = 1, held = 1 }, m.stats())

      local out = m.product(product("2", 20), ctx(3))
      assert.are.equal(1, #out)
      local r = out[1]
      assert.are.equal(5, r.id)
      assert.are.same({
        { id = "1", name = "Product 1", stock = 10 },
        { id = "2", name = "Product 2", stock = 20 },
      }, plain(r.products))
      assert.is_nil(r.missing_product_ids)
      assert.are.same({ products = 2, held = 0 }, m.stats())
      -- released once: nothing left for expire
      assert.are.same({}, m.expire(ctx(100)))
    end)

    it("keeps holding until the last missing product arrives", function()
      assert.are.same({}, m.customer(customer(5, { "2", "3" }), ctx(1)))
      assert.are.same({}, m.product(product("2", 20), ctx(2)))
      assert.are.equal(1, m.stats().held)
      local out = m.product(product("3", 30), ctx(3))
      assert.are.equal(1, #out)
      assert.are.same({ "2", "3" }, { out[1].products[1].id, out[1].products[2].id })
      assert.is_nil(out[1].missing_product_ids)
      assert.are.equal(0, m.stats().held)
    end)

    it("releases a customer whose product never comes after hold_ms", function()
      m.product(product("1", 10), ctx(0))
      assert.are.same({}, m.customer(customer(5, { "1", "9" }), ctx(100)))
      assert.are.same({}, m.expire(ctx(100)))
      assert.are.same({}, m.expire(ctx(100 + HOLD_MS / 1000 - 0.01)))
      assert.are.equal(1, m.stats().held)

      local out = m.expire(ctx(100 + HOLD_MS / 1000 + 0.01))
      assert.are.equal(1, #out)
      local r = out[1]
      assert.are.equal(5, r.id)
      assert.are.same({ { id = "1", name = "Product 1", stock = 10 } }, plain(r.products))
      assert.are.same({ "9" }, r.missing_product_ids)
      assert.truthy(r.merged_at:match(ISO))
      assert.are.equal(0, m.stats().held)
      assert.are.same({}, m.expire(ctx(1000)))
    end)

    it("expires only the customers whose hold ran out", function()
      m.customer(customer(1, { "8" }), ctx(10))
      m.customer(customer(2, { "9" }), ctx(12))
      local out = m.expire(ctx(10 + HOLD_MS / 1000))
      assert.are.same({ "1" }, ids(out))
      assert.are.same({ "8" }, out[1].missing_product_ids)
      assert.are.same({}, plain(out[1].products))
      assert.are.equal(1, m.stats().held)
      out = m.expire(ctx(12 + HOLD_MS / 1000))
      assert.are.same({ "2" }, ids(out))
    end)

    it("keeps the first hold time when a held customer is updated", function()
      m.customer(customer(1, { "8" }), ctx(10))
      assert.are.same({}, m.customer(customer(1, { "8" }, { name = "Renamed" }), ctx(14)))
      assert.are.equal(1, m.stats().held)
      local out = m.expire(ctx(10 + HOLD_MS / 1000))
      assert.are.equal(1, #out)
      assert.are.equal("Renamed", out[1].name) -- the latest version is delivered
    end)

    it("delivers at once when the update of a held customer is complete", function()
      m.product(product("1", 10), ctx(0))
      m.customer(customer(1, { "8" }), ctx(1))
      local out = m.customer(customer(1, { "1" }), ctx(2))
      assert.are.equal(1, #out)
      assert.is_nil(out[1].missing_product_ids)
      assert.are.equal(0, m.stats().held)
      assert.are.same({}, m.expire(ctx(100)))
    end)

    it("does not hold when hold_ms or hold_max is 0", function()
      local out = m.customer(customer(1, { "9" }), ctx(1, 0, 100))
      assert.are.equal(1, #out)
      assert.are.same({ "9" }, out[1].missing_product_ids)
      out = m.customer(customer(2, { "9" }), ctx(1, HOLD_MS, 0))
      assert.are.equal(1, #out)
      assert.are.same({ "9" }, out[1].missing_product_ids)
      assert.are.equal(0, m.stats().held)
    end)

    it("holds at most hold_max customers, releasing the oldest first", function()
      local function c(now, id, pid)
        return m.customer(customer(id, { pid }), ctx(now, HOLD_MS, 2))
      end
      assert.are.same({}, c(1, 1, "7"))
      assert.are.same({}, c(2, 2, "8"))
      assert.are.equal(2, m.stats().held)
      local out = c(3, 3, "9")
      assert.are.equal(1, #out)
      assert.are.equal(1, out[1].id)
      assert.are.same({ "7" }, out[1].missing_product_ids)
      assert.are.same({}, plain(out[1].products))
      assert.are.equal(2, m.stats().held)

      out = c(4, 4, "6")
      assert.are.same({ "2" }, ids(out))
      assert.are.equal(2, m.stats().held)

      -- customer 3 and 4 are still held: their products release them
      out = m.product(product("9", 1), ctx(5, HOLD_MS, 2))
      assert.are.same({ "3" }, ids(out))
      assert.is_nil(out[1].missing_product_ids)
      assert.are.equal(1, m.stats().held)
    end)
  end)

  describe("index", function()
    it("follows a customer update to its new products", function()
      m.product(product("1", 10), ctx(0))
      m.product(product("2", 20), ctx(0))
      m.customer(customer(1, { "1" }), ctx(1))
      assert.are.equal(1, #m.product(product("1", 11), ctx(2)))

      local out = m.customer(customer(1, { "2" }), ctx(3))
      assert.are.equal(1, #out)
      assert.are.same({ { id = "2", name = "Product 2", stock = 20 } }, plain(out[1].products))

      assert.are.same({}, m.product(product("1", 12), ctx(4)))
      out = m.product(product("2", 21), ctx(5))
      assert.are.equal(1, #out)
      assert.are.equal(1, out[1].id)
      assert.are.equal(21, out[1].products[1].stock)
    end)

    it("keeps a customer in the index when an update keeps its productIds", function()
      m.product(product("1", 10), ctx(0))
      m.product(product("2", 20), ctx(0))
      m.customer(customer(1, { "1", "2" }), ctx(1))
      local out = m.customer(customer(1, { "1", "2" }, { name = "Renamed" }), ctx(2))
      assert.are.equal("Renamed", out[1].name)
      out = m.product(product("2", 21), ctx(3))
      assert.are.equal(1, #out)
      assert.are.equal("Renamed", out[1].name)
      assert.are.equal(21, out[1].products[2].stock)
      -- a shorter list is a change: product 2 no longer reaches the customer
      m.customer(customer(1, { "1" }), ctx(4))
      assert.are.same({}, m.product(product("2", 22), ctx(5)))
      assert.are.equal(1, #m.product(product("1", 11), ctx(6)))
    end)

    it("treats integer and float ids as the same key", function()
      -- customer 7 as the JSON decoder gives it (an integer), then as a float
      m.product(product("1", 10), ctx(0))
      m.product(product("2", 20), ctx(0))
      local c = via_json(customer(7, { "1" }))
      assert.are.equal("integer", math.type(c.id))
      assert.are.equal(1, #m.customer(c, ctx(1)))
      local out = m.product(product("1", 11), ctx(2))
      assert.are.equal(1, #out)
      assert.are.equal(7, out[1].id)

      -- the float 7.0 is the same customer: its update moves it to product 2
      m.customer(customer(7.0, { "2" }), ctx(3))
      assert.are.same({}, m.product(product("1", 12), ctx(4)))
      out = m.product(product("2", 21), ctx(5))
      assert.are.equal(1, #out)
      assert.are.equal(21, out[1].products[1].stock)
    end)

    it("matches product ids given as numbers with string ones", function()
      m.product(product(3, 30), ctx(0)) -- a product whose id is the integer 3
      m.product(product("4", 40), ctx(0))
      -- productIds as integers, a float, and a string
      local out = m.customer(customer(1, { 4, 3.0, "3" }), ctx(1))
      assert.are.equal(1, #out)
      assert.is_nil(out[1].missing_product_ids)
      assert.are.same({ 40, 30, 30 }, {
        out[1].products[1].stock,
        out[1].products[2].stock,
        out[1].products[3].stock,
      })
      -- a change of product "3" given as a string id reaches the customer
      out = m.product(product("3", 31), ctx(2))
      assert.are.equal(1, #out)
      assert.are.equal(31, out[1].products[2].stock)
    end)
  end)

  describe("reload", function()
    it("keeps products, the index and held customers in the host's state table", function()
      m.product(product("1", 10), ctx(0))
      m.customer(customer(1, { "1" }), ctx(1))
      assert.are.same({}, m.customer(customer(2, { "1", "2" }), ctx(2)))

      local again = loader.load(PATH, state)
      assert.are_not.equal(m, again)
      assert.are.same({ products = 1, held = 1 }, again.stats())
      -- the catalogue is known: an unchanged product re-emits nothing
      assert.are.same({}, again.product(product("1", 10), ctx(3)))
      -- the held customer is released by a product arriving after the reload
      local out = again.product(product("2", 20), ctx(4))
      assert.are.same({ "2" }, ids(out))
      assert.is_nil(out[1].missing_product_ids)
      assert.are.equal(2, #out[1].products)
      assert.are.same({ products = 2, held = 0 }, again.stats())
      -- and the index: a change of product 1 reaches both customers
      assert.are.same({ "1", "2" }, ids(again.product(product("1", 9), ctx(5))))
    end)

    it("keeps the hold time across a reload", function()
      m.customer(customer(1, { "9" }), ctx(10))
      local again = loader.load(PATH, state)
      assert.are.same({}, again.expire(ctx(10 + HOLD_MS / 1000 - 0.01)))
      assert.are.same({ "1" }, ids(again.expire(ctx(10 + HOLD_MS / 1000))))
    end)

    it("sees a product change made by another load sharing the state", function()
      m.product(product("1", 10), ctx(0))
      assert.are.equal(10, m.customer(customer(1, { "1" }), ctx(1))[1].products[1].stock)
      local again = loader.load(PATH, state)
      again.product(product("1", 11), ctx(2))
      assert.are.equal(11, m.customer(customer(2, { "1" }), ctx(3))[1].products[1].stock)
    end)

    it("works on a state table an older version filled", function()
      -- what a version without the fields added since would have left
      local old = {
        products = { ["1"] = { id = "1", name = "Product 1", stock = 10 } },
        customers = { ["1"] = customer(1, { "1", "2" }) },
        by_product = { ["1"] = { ["1"] = true }, ["2"] = { ["1"] = true } },
        held = { ["1"] = 10 },
        held_count = 1,
      }
      local again = loader.load(PATH, old)
      assert.are.same({ products = 1, held = 1 }, again.stats())
      local out = again.product(product("2", 20), ctx(11))
      assert.are.same({ "1" }, ids(out))
      assert.is_nil(out[1].missing_product_ids)
      assert.are.equal(2, #out[1].products)
      assert.are.equal(20, again.customer(customer(2, { "2" }), ctx(12))[1].products[1].stock)
    end)

    it("starts empty with a fresh state table", function()
      m.product(product("1", 10), ctx(0))
      assert.are.same({ products = 0, held = 0 }, loader.load(PATH, {}).stats())
    end)
  end)

  describe("with the mock data", function()
    it("delivers customers referencing product \"0\" with it missing after the hold", function()
      -- what the producer publishes: the data scripts' records through JSON
      local inventory = loader.load("scripts/inventory.lua")
      local crm = loader.load("scripts/crm.lua")
      local products = via_json(inventory.generate({ count = 10, seed = 42 }))
      local customers = via_json(crm.generate({ count = 30, seed = 42 }))
      for _, p in ipairs(products) do
        assert.are.same({}, m.product(p, ctx(0)))
      end
      local delivered, expect_held = {}, {}
      for _, c in ipairs(customers) do
        for _, r in ipairs(m.customer(c, ctx(1))) do
          delivered[#delivered + 1] = r
        end
        if c.id % 6 == 0 then
          expect_held[#expect_held + 1] = tostring(c.id)
        end
      end
      assert.are.equal(30 - #expect_held, #delivered)
      for _, r in ipairs(delivered) do
        assert.is_nil(r.missing_product_ids)
        assert.are.equal(#r.productIds, #r.products)
      end
      assert.are.equal(#expect_held, m.stats().held)

      assert.are.same({}, m.expire(ctx(1 + HOLD_MS / 1000 - 0.01)))
      local out = m.expire(ctx(1 + HOLD_MS / 1000))
      table.sort(expect_held)
      assert.are.same(expect_held, ids(out))
      for _, r in ipairs(out) do
        assert.are.same({ "0" }, r.missing_product_ids)
        assert.are.equal(#r.productIds - 1, #r.products)
        for _, p in ipairs(r.products) do
          assert.are_not.equal("0", p.id)
        end
      end
      assert.are.equal(0, m.stats().held)
    end)
  end)
  -- The host hands merge.lua record views (M.views): the text of the record, decoded as
  -- it is read. Every path must give the same records as it does for decoded tables.
  describe("with record views", function()
    local function view(v)
      return junction.record_view(junction.json_encode(v))
    end

    local function run(as)
      local m = loader.load(PATH, {})
      local out, when = {}, 1
      local function keep(records)
        for _, r in ipairs(records) do
          out[#out + 1] = junction.json_encode(r)
        end
      end
      keep(m.product(as(product("P1", 5)), ctx(when)))
      keep(m.customer(as(customer(1, { "P1" })), ctx(when)))
      keep(m.customer(as(customer(2, { "P1", "P2" }, { address = { city = "Oslo" } })), ctx(when)))
      keep(m.customer(as(customer(3, {})), ctx(when)))
      keep(m.customer(as(customer(1, { "P1" }, { name = "Renamed" })), ctx(when)))
      keep(m.product(as(product("P2", 7)), ctx(when)))
      keep(m.product(as(product("P1", 6)), ctx(when)))
      keep(m.customer(as(customer(4, { "P9" })), ctx(when)))
      keep(m.expire(ctx(when + HOLD_MS / 1000)))
      m.restore_customer(as(customer(5, { "P2" })), ctx(when))
      keep(m.product(as(product("P2", 8)), ctx(when)))
      return out
    end

    it("reads what junction.record_view refuses through json_decode", function()
      local v, why = junction.record_view('{"a": 1}')
      assert.is_nil(v)
      assert.truthy(why:match("canonical"))
    end)

    it("declares that it takes them", function()
      assert.is_true(loader.load(PATH, {}).views)
    end)

    it("gives the same records as for tables, byte for byte", function()
      local tables = run(via_json)
      local views = run(view)
      assert.are.equal(9, #tables)
      -- merged_at comes from ctx.now, the same in both runs
      assert.are.same(tables, views)
    end)
  end)
end)

-- examples/transforms/merge_total_stock.lua: scripts/merge.lua with one more field on
-- every merged record, total_stock = the sum of the stock of the customer's known
-- products. Same contract: customer(c, ctx), product(p, ctx), expire(ctx) return arrays
-- of merged records; the state table passed as `...` survives reloads.
local loader = require "script_loader"
local junction = require "junction"

local PATH = "examples/transforms/merge_total_stock.lua"

local function ctx(now, hold_ms, hold_max)
  return { now = now, hold_ms = hold_ms or 5000, hold_max = hold_max or 100,
           hold = function() return true end }
end

local function product(id, stock)
  return { id = id, name = "Product " .. id, stock = stock }
end

local function customer(id, product_ids)
  return {
    id = id,
    name = "Customer " .. id,
    email = "customer" .. id .. "@example.com",
    productIds = product_ids,
  }
end

local function by_id(records, id)
  for _, r in ipairs(records) do
    if r.id == id then return r end
  end
  return nil
end

describe(PATH, function()
  local state, m

  before_each(function()
    state = {}
    m = loader.load(PATH, state)
  end)

  it("defines customer, product, expire and stats like merge.lua", function()
    assert.is_function(m.customer)
    assert.is_function(m.product)
    assert.is_function(m.expire)
    assert.are.same({ products = 0, held = 0 }, m.stats())
  end)

  it("adds total_stock, the sum of the customer's products' stock", function()
    m.product(product("1", 3), ctx(1))
    m.product(product("4", 9), ctx(1))
    local out = m.customer(customer(7, { "1", "4" }), ctx(2))
    assert.are.equal(1, #out)
    assert.are.equal(12, out[1].total_stock)
    assert.are.equal("integer", math.type(out[1].total_stock))
  end)

  it("gives a customer without products a total of 0", function()
    assert.are.equal(0, m.customer(customer(1, {}), ctx(1))[1].total_stock)
    assert.are.equal(0, m.customer({ id = 2, name = "No list" }, ctx(1))[1].total_stock)
  end)

  it("counts a product referenced twice twice, like its two entries in products", function()
    m.product(product("2", 5), ctx(1))
    local r = m.customer(customer(1, { "2", "2" }), ctx(2))[1]
    assert.are.equal(2, #r.products)
    assert.are.equal(10, r.total_stock)
  end)

  it("re-emits the customers of a product whose stock changed with the new total", function()
    m.product(product("1", 10), ctx(1))
    m.product(product("2", 20), ctx(1))
    m.customer(customer(1, { "1", "2" }), ctx(2))
    m.customer(customer(2, { "2" }), ctx(2))
    m.customer(customer(3, { "1" }), ctx(2))
    local out = m.product(product("2", 15), ctx(3))
    assert.are.equal(2, #out)
    assert.are.equal(25, by_id(out, 1).total_stock)
    assert.are.equal(15, by_id(out, 2).total_stock)
    -- an unchanged product re-emits nothing, as in merge.lua
    assert.are.same({}, m.product(product("2", 15), ctx(4)))
  end)

  it("leaves products not seen yet out of the total", function()
    m.product(product("1", 7), ctx(1))
    -- product "0" never arrives: the customer is held, then released by expire
    assert.are.same({}, m.customer(customer(6, { "1", "0" }), ctx(10)))
    local out = m.expire(ctx(16))
    assert.are.equal(1, #out)
    assert.are.same({ "0" }, out[1].missing_product_ids)
    assert.are.equal(7, out[1].total_stock)
  end)

  it("keeps the catalogue across a reload, so totals stay right", function()
    m.product(product("1", 4), ctx(1))
    m = loader.load(PATH, state) -- the host reloads the file with the same state table
    assert.are.equal(4, m.customer(customer(1, { "1" }), ctx(2))[1].total_stock)
  end)

  it("otherwise yields exactly what scripts/merge.lua yields", function()
    local plain = loader.load("scripts/merge.lua", {})
    local steps = {
      function(s) return s.product(product("1", 10), ctx(1)) end,
      function(s) return s.product(product("2", 20), ctx(1)) end,
      function(s) return s.customer(customer(1, { "1", "2" }), ctx(2)) end,
      function(s) return s.customer(customer(2, { "3" }), ctx(2)) end,
      function(s) return s.customer(customer(3, { "2", "3" }), ctx(2.5)) end,
      function(s) return s.product(product("3", 30), ctx(3)) end,
      function(s) return s.product(product("1", 11), ctx(4)) end,
      function(s) return s.customer(customer(4, { "9" }), ctx(5)) end,
      function(s) return s.expire(ctx(11)) end,
    }
    local n = 0
    for i, step in ipairs(steps) do
      local want, got = step(plain), step(m)
      table.sort(want, function(a, b) return a.id < b.id end)
      table.sort(got, function(a, b) return a.id < b.id end)
      assert.are.equal(#want, #got, "step " .. i)
      for j, r in ipairs(got) do
        local total = 0
        for _, p in ipairs(r.products) do total = total + p.stock end
        assert.are.equal(total, r.total_stock, "step " .. i)
        r.total_stock = nil
        -- as JSON: merge.lua keeps products as record views, this one as tables
        assert.are.equal(junction.json_encode(want[j]), junction.json_encode(r), "step " .. i)
        n = n + 1
      end
    end
    assert.is_true(n >= 5) -- the steps produced records to compare
  end)
end)

-- scripts/crm.lua: the customers the original CRM API served.
local loader = require "script_loader"

local PATH = "scripts/crm.lua"

local function customer(overrides)
  local c = {
    id = 1,
    name = "Customer 1",
    email = "customer1@example.com",
    phone = "078801",
    productIds = { "1" },
  }
  for k, v in pairs(overrides or {}) do
    c[k] = v
  end
  return c
end

describe("crm.lua", function()
  local crm

  before_each(function()
    crm = loader.load(PATH)
  end)

  it("loads with plain loadfile too, returning the module", function()
    local m = assert(loadfile(PATH))()
    assert.is_function(m.generate)
    assert.is_function(m.validate)
  end)

  it("declares integer ids and the original key order", function()
    assert.are.equal("integer", crm.id_type)
    assert.are.same({ "id", "name", "email", "phone", "productIds" }, crm.fields)
  end)

  describe("generate", function()
    it("generates exactly opts.count customers", function()
      for _, n in ipairs({ 0, 1, 7, 1000 }) do
        local out = crm.generate({ count = n, seed = 42 })
        assert.are.equal(n, #out)
        local keys = 0
        for _ in pairs(out) do
          keys = keys + 1
        end
        assert.are.equal(n, keys) -- an array, nothing beside it
      end
    end)

    it("is deterministic for a seed", function()
      local a = crm.generate({ count = 300, seed = 42 })
      local b = crm.generate({ count = 300, seed = 42 })
      assert.are.same(a, b)
      -- a freshly loaded copy of the script (as after a reload) agrees as well
      local again = loader.load(PATH).generate({ count = 300, seed = 42 })
      assert.are.equal(loader.hash(a), loader.hash(again))
    end)

    it("differs between seeds", function()
      local a = crm.generate({ count = 300, seed = 42 })
      local b = crm.generate({ count = 300, seed = 7 })
      assert.are_not.same(a, b)
      assert.are_not.equal(loader.hash(a), loader.hash(b))
    end)

    it("gives every customer the original shape", function()
      for i, c in ipairs(crm.generate({ count = 250, seed = 3 })) do
        assert.are.equal("integer", math.type(c.id))
        assert.are.equal(i, c.id)
        assert.are.equal("Customer " .. i, c.name)
        assert.are.equal("customer" .. i .. "@example.com", c.email)
        assert.is_string(c.phone)
        assert.is_table(c.productIds)
        for _, p in ipairs(c.productIds) do
          assert.is_string(p)
        end
        local keys = {}
        for k in pairs(c) do
          keys[#keys + 1] = k
        end
        table.sort(keys)
        assert.are.same({ "email", "id", "name", "phone", "productIds" }, keys)
      end
    end)

    it("references product i % 6 first and gives even ids a second product", function()
      for i, c in ipairs(crm.generate({ count = 120, seed = 42 })) do
        assert.are.equal(tostring(i % 6), c.productIds[1])
        if i % 2 == 0 then
          assert.are.equal(2, #c.productIds)
          local second = tonumber(c.productIds[2])
          assert.is_true(math.type(second) == "integer" and second >= 1 and second <= 10,
            "second product id of customer " .. i .. " is " .. c.productIds[2])
        else
          assert.are.equal(1, #c.productIds)
        end
      end
    end)

    it("keeps the data it served for seed 42", function()
      local out = crm.generate({ count = 10, seed = 42 })
      assert.are.same({ "2", "5" }, out[2].productIds)
      assert.are.same({ "0", "9" }, out[6].productIds)
      assert.are.same({ "4", "5" }, out[10].productIds)
      assert.are.equal("078802", out[2].phone)
    end)

    it("produces records its own validate() accepts", function()
      for _, c in ipairs(crm.generate({ count = 200, seed = 11 })) do
        local ok, err = crm.validate(c)
        assert.is_table(ok, err)
      end
    end)
  end)

  describe("validate", function()
    it("accepts a good record and returns it", function()
      local c = customer()
      local out, err = crm.validate(c)
      assert.is_nil(err)
      assert.are.same(customer(), out)
    end)

    it("accepts a record without phone or productIds", function()
      local c = customer()
      c.phone, c.productIds = nil, nil
      local out = assert(crm.validate(c))
      assert.are.same({}, out.productIds)
    end)

    local function rejects(record, field)
      local out, err = crm.validate(record)
      assert.is_nil(out)
      assert.is_string(err)
      assert.is_truthy(err:find(field, 1, true), "message does not name " .. field .. ": " .. err)
    end

    it("rejects a missing or empty name", function()
      local c = customer()
      c.name = nil
      rejects(c, "name")
      rejects(customer({ name = "" }), "name")
      rejects(customer({ name = 12 }), "name")
    end)

    it("rejects a bad email", function()
      rejects(customer({ email = "not-an-email" }), "email")
      rejects(customer({ email = "a@b@c" }), "email")
      rejects(customer({ email = "sp ace@example.com" }), "email")
      rejects(customer({ email = 5 }), "email")
      local c = customer()
      c.email = nil
      rejects(c, "email")
    end)

    it("rejects a phone that is not a string", function()
      rejects(customer({ phone = 788 }), "phone")
    end)

    it("rejects productIds that are not an array", function()
      rejects(customer({ productIds = "1" }), "productIds")
      rejects(customer({ productIds = 1 }), "productIds")
      rejects(customer({ productIds = { "1", true } }), "productIds")
      rejects(customer({ productIds = { "1", 2.5 } }), "productIds")
    end)

    it("rejects productIds given as a table with non-sequence keys ({x = '1'})", function()
      rejects(customer({ productIds = { x = "1" } }), "productIds")
      rejects(customer({ productIds = { "1", [5] = "2" } }), "productIds")
    end)

    it("names a JSON null as null, not as a userdata", function()
      local null = require("junction").null
      local function says(record, want)
        local out, err = crm.validate(record)
        assert.is_nil(out)
        assert.are.equal(want, err)
      end
      says(customer({ productIds = { null, 1 } }),
        "productIds[1] must be a product id string, got null")
      says(customer({ phone = null }), "phone must be a string, got null")
      says(customer({ name = null }), "name must be a non-empty string, got null")
      says(customer({ email = null }), "email must look like user@host, got null")
      says(customer({ email = "nope" }), 'email must look like user@host, got "nope"')
    end)

    it("rejects a product id too large for an integer with a message, not an error", function()
      local ok, out, err = pcall(crm.validate, customer({ productIds = { 1e300 } }))
      assert.is_true(ok, out)
      assert.is_nil(out)
      assert.are.equal("productIds[1] must be a product id string, got 1e+300", err)
    end)

    it("normalises numeric productIds to strings", function()
      local out = assert(crm.validate(customer({ productIds = { 1, "2", 3.0 } })))
      assert.are.same({ "1", "2", "3" }, out.productIds)
    end)
  end)
end)

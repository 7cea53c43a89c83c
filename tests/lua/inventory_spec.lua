-- scripts/inventory.lua: the products the original Inventory API served.
local loader = require "script_loader"

local PATH = "scripts/inventory.lua"

local ORIGINAL_NAMES = {
  "Inkweto", "Ishati", "Ipantalo", "Ingofero", "Isakoshi",
  "Igitenge", "Isabune", "Ikaramu", "Igikombe", "Amata",
}

describe("inventory.lua", function()
  local inventory

  before_each(function()
    inventory = loader.load(PATH)
  end)

  it("loads with plain loadfile too, returning the module", function()
    local m = assert(loadfile(PATH))()
    assert.is_function(m.generate)
    assert.is_function(m.validate)
  end)

  it("declares string ids and the original key order", function()
    assert.are.equal("string", inventory.id_type)
    assert.are.same({ "id", "name", "stock" }, inventory.fields)
  end)

  describe("generate", function()
    it("generates exactly opts.count products", function()
      for _, n in ipairs({ 0, 1, 10, 500 }) do
        local out = inventory.generate({ count = n, seed = 42 })
        assert.are.equal(n, #out)
        local keys = 0
        for _ in pairs(out) do
          keys = keys + 1
        end
        assert.are.equal(n, keys)
      end
    end)

    it("is deterministic for a seed", function()
      local a = inventory.generate({ count = 200, seed = 42 })
      local b = inventory.generate({ count = 200, seed = 42 })
      assert.are.same(a, b)
      local again = loader.load(PATH).generate({ count = 200, seed = 42 })
      assert.are.equal(loader.hash(a), loader.hash(again))
    end)

    it("differs between seeds", function()
      local a = inventory.generate({ count = 200, seed = 42 })
      local b = inventory.generate({ count = 200, seed = 43 })
      assert.are_not.same(a, b)
      assert.are_not.equal(loader.hash(a), loader.hash(b))
    end)

    it("gives every product the original shape", function()
      for i, p in ipairs(inventory.generate({ count = 150, seed = 5 })) do
        assert.are.equal("string", type(p.id))
        assert.are.equal(tostring(i), p.id)
        assert.is_string(p.name)
        assert.is_true(#p.name > 0)
        assert.are.equal("integer", math.type(p.stock))
        assert.is_true(p.stock >= 0, "negative stock for product " .. i)
        local keys = {}
        for k in pairs(p) do
          keys[#keys + 1] = k
        end
        table.sort(keys)
        assert.are.same({ "id", "name", "stock" }, keys)
      end
    end)

    it("names the first ten products as the original did", function()
      local out = inventory.generate({ count = 12, seed = 42 })
      assert.are.equal("Inkweto", out[1].name)
      for i, name in ipairs(ORIGINAL_NAMES) do
        assert.are.equal(name, out[i].name)
      end
      -- later products reuse the names with their id, so names stay unique
      assert.are.equal("Inkweto 11", out[11].name)
      assert.are.equal("Ishati 12", out[12].name)
    end)

    it("keeps the stock it served for seed 42", function()
      local out = inventory.generate({ count = 10, seed = 42 })
      local stock = {}
      for i, p in ipairs(out) do
        stock[i] = p.stock
      end
      assert.are.same({ 34, 26, 38, 3, 94, 56, 69, 10, 66, 25 }, stock)
    end)

    it("produces records its own validate() accepts", function()
      for _, p in ipairs(inventory.generate({ count = 100, seed = 9 })) do
        local ok, err = inventory.validate(p)
        assert.is_table(ok, err)
      end
    end)
  end)

  describe("validate", function()
    local function product(overrides)
      local p = { id = "1", name = "Inkweto", stock = 3 }
      for k, v in pairs(overrides or {}) do
        p[k] = v
      end
      return p
    end

    local function rejects(record, field)
      local out, err = inventory.validate(record)
      assert.is_nil(out)
      assert.is_string(err)
      assert.is_truthy(err:find(field, 1, true), "message does not name " .. field .. ": " .. err)
    end

    it("accepts a good record and returns it", function()
      local out, err = inventory.validate(product())
      assert.is_nil(err)
      assert.are.same(product(), out)
    end)

    it("accepts zero stock", function()
      assert.is_table(inventory.validate(product({ stock = 0 })))
    end)

    it("rejects a missing or empty name", function()
      local p = product()
      p.name = nil
      rejects(p, "name")
      rejects(product({ name = "" }), "name")
      rejects(product({ name = 7 }), "name")
    end)

    it("names a JSON null stock as null", function()
      local out, err = inventory.validate(product({ stock = require("junction").null }))
      assert.is_nil(out)
      assert.are.equal("stock must be a whole number, got null", err)
    end)

    it("rejects negative stock", function()
      rejects(product({ stock = -1 }), "stock")
      rejects(product({ stock = -3.0 }), "stock")
    end)

    it("rejects fractional stock", function()
      rejects(product({ stock = 1.5 }), "stock")
      rejects(product({ stock = 0.001 }), "stock")
    end)

    it("rejects stock that is missing or not a number", function()
      local p = product()
      p.stock = nil
      rejects(p, "stock")
      rejects(product({ stock = "5" }), "stock")
      rejects(product({ stock = 0 / 0 }), "stock")
      rejects(product({ stock = math.huge }), "stock")
    end)

    it("rejects whole-number stock too large for an integer (1e300)", function()
      rejects(product({ stock = 1e300 }), "stock")
    end)

    it("stores whole-number float stock as an integer", function()
      local out = assert(inventory.validate(product({ stock = 5.0 })))
      assert.are.equal(5, out.stock)
      assert.are.equal("integer", math.type(out.stock))
    end)
  end)
end)

-- scripts/lcg.lua: the seeded generator of the mock data scripts.
local loader = require "script_loader"

describe("lcg.lua", function()
  local generator = loader.load("scripts/lcg.lua")

  it("gives the same numbers for a seed, from 1 to n", function()
    local a, b = generator(42), generator(42)
    for _ = 1, 1000 do
      local x = a(10)
      assert.are.equal(x, b(10))
      assert.is_true(math.type(x) == "integer" and x >= 1 and x <= 10)
    end
  end)

  it("keeps the sequence the seed's data was made with", function()
    local pick = generator(42)
    assert.are.same({ 5, 7, 9, 4, 5 }, { pick(10), pick(10), pick(10), pick(10), pick(10) })
  end)

  it("differs between seeds", function()
    local a, b, same = generator(1), generator(2), 0
    for _ = 1, 100 do
      if a(1000) == b(1000) then same = same + 1 end
    end
    assert.is_true(same < 5)
  end)
end)

-- The deterministic generator the mock data scripts share (crm.lua, inventory.lua,
-- orders.lua, with `local generator = require "lcg"`): a 64-bit LCG, so the same seed
-- gives the same data on every machine, which keeps tests and content hashes stable.
-- generator(seed) returns pick, and pick(n) the next number from 1 to n.
return function(seed)
  local state = seed
  return function(n)
    state = state * 6364136223846793005 + 1442695040888963407
    return ((state >> 33) % n) + 1
  end
end

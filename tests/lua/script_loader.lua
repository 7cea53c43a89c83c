-- Loads a mock-data script for the specs roughly as the host does: a fresh chunk per load,
-- a private environment in which reading an undefined global is an error, `junction`
-- available as a global (the real module, build/junction.so), and a state table as `...`.
local junction = require "junction"
local cjson = require "cjson"

local M = {}

function M.load(path, state)
  local env
  -- As in the host: "stock.<name>" is scripts/<name>.lua, given the same state table.
  local function require_stock(name)
    local stock = name:match("^stock%.(.+)$")
    if stock then return M.load("scripts/" .. stock:gsub("%.", "/") .. ".lua", state) end
    return require(name)
  end
  env = setmetatable({ junction = junction, require = require_stock }, {
    __index = function(_, k)
      local v = _G[k]
      if v == nil then
        error("read of undefined global '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
  })
  state = state or {}
  local chunk = assert(loadfile(path, "t", env))
  return chunk(state)
end

-- JSON with sorted keys, so equal data gives equal bytes (and equal content hashes).
function M.canonical(v)
  if type(v) ~= "table" then
    return cjson.encode(v)
  end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i, x in ipairs(v) do
      parts[i] = M.canonical(x)
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = cjson.encode(k) .. ":" .. M.canonical(v[k])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- The content hash of data, as the host's ETags would see a change.
function M.hash(v)
  return junction.sha256(M.canonical(v))
end

return M

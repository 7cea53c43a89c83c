-- examples/transforms/map_mask_email.lua: a producer map script for the CRM source that
-- publishes customers with their e-mail masked ("c***@example.com"). Same contract as
-- scripts/map_customers.lua: map(record, ctx) -> {key, value, headers} or nil.
local loader = require "script_loader"
local junction = require "junction"

local PATH = "examples/transforms/map_mask_email.lua"
local CTX = { source = "crm", topic = "customer_data" }

-- Decodes JSON text as the producer does (integers stay integers).
local function decode(text)
  local v, err = junction.json_decode(text)
  assert(v ~= nil, err)
  return v
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

describe(PATH, function()
  local m

  before_each(function()
    m = loader.load(PATH)
  end)

  it("defines map(record, ctx)", function()
    assert.is_function(m.map)
  end)

  it("masks customer7@example.com as c***@example.com", function()
    local customer = decode('{"id":7,"name":"Customer 7","email":"customer7@example.com",'
      .. '"phone":"078807","productIds":["1"]}')
    local out = m.map(customer, CTX)
    assert.are.equal("c***@example.com", out.value.email)
  end)

  it("keeps the key, the other fields and the source header of map_customers.lua", function()
    local text = '{"id":7,"name":"Customer 7","email":"customer7@example.com",'
      .. '"phone":"078807","productIds":["1","4"]}'
    local plain = loader.load("scripts/map_customers.lua").map(decode(text), CTX)
    local out = m.map(decode(text), CTX)
    assert.are.equal(plain.key, out.key)
    assert.are.equal("7", out.key)
    local expected = copy(plain.value)
    expected.email = "c***@example.com"
    assert.are.same(expected, out.value)
    assert.are.equal("crm", out.headers.source)
    assert.are.equal("masked", out.headers.email)
    -- headers are strings, as the host requires
    for name, value in pairs(out.headers) do
      assert.is_string(name)
      assert.is_string(value)
    end
  end)

  it("leaves the record it was given unchanged", function()
    local customer = decode('{"id":3,"name":"Customer 3","email":"customer3@example.com"}')
    local out = m.map(customer, CTX)
    assert.are.equal("customer3@example.com", customer.email)
    assert.are_not.equal(customer, out.value)
  end)

  it("publishes the masked address, never the original, in the JSON the host sends", function()
    local out = m.map(decode('{"id":9,"email":"customer9@example.com"}'), CTX)
    local json = junction.json_encode(out.value)
    assert.is_nil(json:find("customer9", 1, true))
    assert.truthy(json:find('"c***@example.com"', 1, true))
  end)

  it("masks every customer the CRM script serves", function()
    local data = loader.load("scripts/crm.lua").generate({ count = 1000, seed = 42 })
    local records = decode(junction.json_encode(data))
    assert.are.equal(1000, #records)
    for _, record in ipairs(records) do
      local original = record.email
      local out = m.map(record, CTX)
      assert.are.equal(tostring(record.id), out.key)
      assert.are.equal(original:sub(1, 1) .. "***@example.com", out.value.email)
      assert.are_not.equal(original, out.value.email)
    end
  end)

  it("masks whatever the local part's length, showing only its first character", function()
    assert.are.equal("a***@x.org", m.mask("a@x.org"))
    assert.are.equal("j***@example.com", m.mask("jo@example.com"))
    assert.are.equal("j***@example.com", m.mask("jean-baptiste.long.name@example.com"))
  end)

  it("keeps a multi-byte first character whole", function()
    assert.are.equal("é***@example.fr", m.mask("élodie@example.fr"))
    assert.are.equal("渡***@example.jp", m.mask("渡辺@example.jp"))
  end)

  it("splits at the last @ and masks a string without @ entirely", function()
    assert.are.equal("a***@c.com", m.mask("a@b@c.com"))
    assert.are.equal("***", m.mask("not an address"))
    assert.are.equal("***@example.com", m.mask("@example.com"))
  end)

  it("publishes a customer without an e-mail as it is", function()
    local out = m.map(decode('{"id":4,"name":"Customer 4"}'), CTX)
    assert.is_nil(out.value.email)
    assert.are.same({ id = 4, name = "Customer 4" }, out.value)
    out = m.map(decode('{"id":5,"email":42}'), CTX)
    assert.are.equal(42, out.value.email)
  end)

  it("keys customer 7 as \"7\", never \"7.0\"", function()
    local out = m.map(decode('{"id":7,"email":"customer7@example.com"}'), CTX)
    assert.are.equal("7", out.key)
  end)
end)

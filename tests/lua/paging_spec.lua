-- scripts/paging.lua (require "stock.paging"): the hooks a source's map script assigns
-- in one line, M.records, M.next = paging.<style>{...}. The producer calls records(body,
-- ctx) with the decoded body and next(response, ctx) with response = {status, headers
-- (lower-cased names), body, url, page, records}; next returns the next URL or nil.
local loader = require "script_loader"
local junction = require "junction"

local paging = loader.load("scripts/paging.lua")

local function decode(text)
  local v, err = junction.json_decode(text)
  assert(v ~= nil, err)
  return v
end

-- The response the producer hands next() for a body (JSON text) at url.
local function response(url, body_text, headers, records_fn)
  local body = decode(body_text)
  return {
    status = 200,
    url = url,
    page = 1,
    headers = headers or {},
    body = body,
    records = records_fn and records_fn(body, {}) or body,
  }
end

local function array(n, from)
  local parts = {}
  for i = 1, n do parts[i] = ('{"id":%d}'):format((from or 0) + i) end
  return "[" .. table.concat(parts, ",") .. "]"
end

describe("paging.set_query and paging.query", function()
  it("appends a parameter, or replaces it where it was", function()
    assert.are.equal("http://h/o?cursor=abc", paging.set_query("http://h/o", "cursor", "abc"))
    assert.are.equal("http://h/o?limit=5&cursor=x", paging.set_query("http://h/o?limit=5", "cursor", "x"))
    assert.are.equal("http://h/o?a=1&cursor=new&b=2",
      paging.set_query("http://h/o?a=1&cursor=old&b=2", "cursor", "new"))
  end)

  it("percent-encodes the value and drops the fragment", function()
    assert.are.equal("http://h/o?c=a%2Bb%2F%3D%26%20x", paging.set_query("http://h/o#frag", "c", "a+b/=& x"))
    assert.are.equal("a+b/=& x", paging.query("http://h/o?c=a%2Bb%2F%3D%26%20x", "c"))
  end)

  it("reads a parameter, nil when absent, and keeps a literal +", function()
    assert.are.equal("20", paging.query("http://h/o?limit=10&offset=20", "offset"))
    assert.is_nil(paging.query("http://h/o?limit=10", "offset"))
    assert.is_nil(paging.query("http://h/o", "offset"))
    assert.are.equal("a+b", paging.query("http://h/o?c=a+b#x", "c"))
  end)
end)

describe("paging.resolve (RFC 3986 5.4)", function()
  local base = "http://a/b/c/d;p?q"
  local cases = {
    { "g", "http://a/b/c/g" }, { "./g", "http://a/b/c/g" }, { "g/", "http://a/b/c/g/" },
    { "/g", "http://a/g" }, { "//g", "http://g" }, { "?y", "http://a/b/c/d;p?y" },
    { "g?y", "http://a/b/c/g?y" }, { "#s", "http://a/b/c/d;p?q#s" }, { "g#s", "http://a/b/c/g#s" },
    { ";x", "http://a/b/c/;x" }, { "", "http://a/b/c/d;p?q" }, { ".", "http://a/b/c/" },
    { "..", "http://a/b/" }, { "../g", "http://a/b/g" }, { "../..", "http://a/" },
    { "../../g", "http://a/g" }, { "../../../g", "http://a/g" }, { "/./g", "http://a/g" },
    { "/../g", "http://a/g" }, { "g.", "http://a/b/c/g." }, { "./../g", "http://a/b/g" },
    { "g/./h", "http://a/b/c/g/h" }, { "g/../h", "http://a/b/c/h" },
    { "https://other:8443/x?y=1", "https://other:8443/x?y=1" },
  }
  for _, c in ipairs(cases) do
    it(("%q"):format(c[1]), function()
      assert.are.equal(c[2], paging.resolve(base, c[1]))
    end)
  end

  it("resolves against a base without a path", function()
    assert.are.equal("http://h:8/p?x=1", paging.resolve("http://h:8", "p?x=1"))
  end)

  it("refuses a base that is not absolute", function()
    assert.has_error(function() paging.resolve("/relative", "g") end)
  end)
end)

describe("paging.parse_link (RFC 8288)", function()
  it("reads targets and parameters, names lower-cased, the first of a repeat kept", function()
    local links = paging.parse_link('<http://h/p?page=2>; rel="next", </p?page=9>;REL=last;title="The \\"end\\"" ; rel=first')
    assert.are.equal(2, #links)
    assert.are.equal("http://h/p?page=2", links[1].target)
    assert.are.equal("next", links[1].params.rel)
    assert.are.equal("/p?page=9", links[2].target)
    assert.are.equal("last", links[2].params.rel)
    assert.are.equal('The "end"', links[2].params.title)
  end)

  it("accepts empty list elements, spaces around the separators and a parameter without a value", function()
    local links = paging.parse_link(' , <a> ;  rel = "next" ; x ,, <b>;rel=prev , ')
    assert.are.equal(2, #links)
    assert.are.equal("next", links[1].params.rel)
    assert.are.equal("", links[1].params.x)
    assert.are.equal("prev", links[2].params.rel)
  end)

  local malformed = {
    { 'http://h/p; rel="next"', 'expected "<"' },
    { '<http://h/p; rel="next"', 'without its ">"' },
    { '<http://h/p> rel="next"', 'expected ";" or ","' },
    { '<http://h/p>; rel="next', "without its closing quote" },
    { '<http://h/p>; ="next"', "expected a parameter name" },
    { '<http://h/p>; rel=', "expected a token or a quoted string" },
    { '<http://h/a b>; rel="next"', "a link target with a space" },
    { '<http://h/p>; rel="ne\\', "ending in a backslash" },
    { '<http://h/p>; rel=@next', "expected a token or a quoted string" },
  }
  for _, c in ipairs(malformed) do
    it(("refuses %q"):format(c[1]), function()
      local ok, err = pcall(paging.parse_link, c[1])
      assert.is_false(ok)
      assert.is_truthy(err:find("Link header: ", 1, true), err)
      assert.is_truthy(err:find(c[2], 1, true), err)
    end)
  end
end)

describe("paging.offset", function()
  local records, next_page = paging.offset { limit = 3 }

  it("reads a bare array: no records hook", function()
    assert.is_nil(records)
  end)

  it("asks for the page after a full one", function()
    local r = response("http://h/c?offset=3&limit=3", array(3, 3))
    assert.are.equal("http://h/c?offset=6&limit=3", next_page(r, {}))
  end)

  it("starts from a URL without parameters, with the helper's limit", function()
    local r = response("http://h/c", array(10))
    assert.are.equal("http://h/c?offset=10&limit=3", next_page(r, {}))
  end)

  it("ends on a short page and on an empty one", function()
    assert.is_nil(next_page(response("http://h/c?offset=6&limit=3", array(2, 6)), {}))
    assert.is_nil(next_page(response("http://h/c?offset=9&limit=3", "[]"), {}))
    -- Without a limit in the URL the API's own page size is unknown: only empty ends.
    assert.are.equal("http://h/c?offset=2&limit=3", next_page(response("http://h/c", array(2)), {}))
  end)

  it("keeps the URL's own limit and other parameters", function()
    local r = response("http://h/c?sort=id&limit=2&offset=4", array(2, 4))
    assert.are.equal("http://h/c?sort=id&limit=2&offset=6", next_page(r, {}))
  end)

  it("takes other parameter names and an envelope", function()
    local rec, nxt = paging.offset { limit = 2, offset_param = "skip", limit_param = "take", records = "items" }
    local body = '{"items":[{"id":1},{"id":2}]}'
    local r = response("http://h/c?skip=0&take=2", body, nil, rec)
    assert.are.equal(2, #r.records)
    assert.are.equal("http://h/c?skip=2&take=2", nxt(r, {}))
  end)

  it("refuses a limit that is not a whole number and a URL offset that is not one", function()
    assert.has_error(function() paging.offset { limit = 0 } end)
    assert.has_error(function() paging.offset { limit = 2.5 } end)
    local ok, err = pcall(next_page, response("http://h/c?offset=x&limit=3", array(3)), {})
    assert.is_false(ok)
    assert.is_truthy(err:find("offset is not a whole number", 1, true), err)
  end)
end)

describe("paging.cursor", function()
  local records, next_page = paging.cursor { records = "data", cursor = "next_cursor", param = "cursor" }

  it("finds the records in the envelope", function()
    local r = records(decode('{"data":[{"id":1},{"id":2}],"next_cursor":"c2"}'), {})
    assert.are.equal(2, #r)
    assert.are.equal(1, r[1].id)
    assert.are.equal(0, #records(decode('{"data":[],"next_cursor":null}'), {}))
  end)

  it("names what is missing when the envelope has no array", function()
    for _, body in ipairs { '{"items":[]}', '{"data":{"id":1}}', '{"data":"x"}', '[{"id":1}]', '"text"' } do
      local ok, err = pcall(records, decode(body), {})
      if body == '{"data":{"id":1}}' then
        -- an object where the array belongs is a table: the host checks it is an array
        assert.is_true(ok)
      else
        assert.is_false(ok, body)
        assert.is_truthy(err:find('"data"', 1, true), err)
      end
    end
  end)

  it("asks for the same URL with the cursor, encoded, keeping the other parameters", function()
    local r = response("http://h/orders?limit=1000", '{"data":[{"id":1}],"next_cursor":"a+b/c="}', nil, records)
    assert.are.equal("http://h/orders?limit=1000&cursor=a%2Bb%2Fc%3D", next_page(r, {}))
    local r2 = response("http://h/orders?limit=1000&cursor=a%2Bb%2Fc%3D", '{"data":[{"id":2}],"next_cursor":"d"}', nil, records)
    assert.are.equal("http://h/orders?limit=1000&cursor=d", next_page(r2, {}))
  end)

  it("ends on a null, missing, false or empty cursor", function()
    for _, body in ipairs { '{"data":[],"next_cursor":null}', '{"data":[]}', '{"data":[],"next_cursor":false}',
                            '{"data":[],"next_cursor":""}' } do
      assert.is_nil(next_page(response("http://h/o", body, nil, records), {}), body)
    end
  end)

  it("takes an integer cursor and refuses one of another kind", function()
    assert.are.equal("http://h/o?cursor=42", next_page(response("http://h/o", '{"data":[],"next_cursor":42}', nil, records), {}))
    local ok, err = pcall(next_page, response("http://h/o", '{"data":[],"next_cursor":{"a":1}}', nil, records), {})
    assert.is_false(ok)
    assert.is_truthy(err:find("not a string", 1, true), err)
  end)

  it("uses its defaults and dotted paths", function()
    local rec, nxt = paging.cursor()
    local r = response("http://h/o", '{"data":[{"id":1}],"next_cursor":"n"}', nil, rec)
    assert.are.equal("http://h/o?cursor=n", nxt(r, {}))
    local rec2, nxt2 = paging.cursor { records = "result.items", cursor = "meta.next", param = "after" }
    local r2 = response("http://h/o", '{"result":{"items":[{"id":1}]},"meta":{"next":"z"}}', nil, rec2)
    assert.are.equal(1, #r2.records)
    assert.are.equal("http://h/o?after=z", nxt2(r2, {}))
  end)
end)

describe("paging.link", function()
  local records, next_page = paging.link()

  it("reads a bare array: no records hook", function()
    assert.is_nil(records)
  end)

  it("follows rel=next, absolute or relative to the page's URL", function()
    local abs = { link = '<http://h/p?page=3&per_page=2>; rel="next", <http://h/p?page=9&per_page=2>; rel="last"' }
    assert.are.equal("http://h/p?page=3&per_page=2", next_page(response("http://h/p?page=2&per_page=2", "[]", abs), {}))
    local rel = { link = '</p?page=3>; rel="prev", <?page=4>; rel=next' }
    assert.are.equal("http://h:81/p?page=4", next_page(response("http://h:81/p?page=3", "[]", rel), {}))
    local dots = { link = '<../v2/items?page=2#top>; rel="next"' }
    assert.are.equal("https://h/v2/items?page=2", next_page(response("https://h/v1/items", "[]", dots), {}))
  end)

  it("finds next among several relation types, in any case", function()
    local h = { link = '<http://h/p?page=2>; rel="next last"' }
    assert.are.equal("http://h/p?page=2", next_page(response("http://h/p", "[]", h), {}))
    h = { link = '<http://h/p?page=2>; rel="NEXT"' }
    assert.are.equal("http://h/p?page=2", next_page(response("http://h/p", "[]", h), {}))
  end)

  it("ends without a Link header or without rel=next", function()
    assert.is_nil(next_page(response("http://h/p", "[]", {}), {}))
    assert.is_nil(next_page(response("http://h/p", "[]", { link = '<http://h/p?page=1>; rel="first"' }), {}))
    assert.is_nil(next_page(response("http://h/p", "[]", { link = "" }), {}))
  end)

  it("raises a clear error on a malformed header", function()
    local ok, err = pcall(next_page, response("http://h/p", "[]", { link = 'http://h/p?page=2; rel="next"' }), {})
    assert.is_false(ok)
    assert.is_truthy(err:find('Link header: expected "<" starting a link', 1, true), err)
  end)

  it("reads an envelope when told where the array is", function()
    local rec = paging.link { records = "items" }
    assert.are.equal(1, #rec(decode('{"items":[{"id":1}]}'), {}))
  end)
end)

-- Stock paging helpers for a source's map script: `local paging = require "stock.paging"`.
--
-- The producer fetches a source's url, hands the decoded body to the script's
-- records(body, ctx) (the array of records inside an envelope; without it the body must
-- be the array) and the response to next(response, ctx), which returns the next page's
-- URL or nil after the last page. response = { status, headers (names lower-cased),
-- body (decoded), url, page (from 1), records (what records() returned) }.
--
-- Each helper returns the two hooks for one common style, so a script pages in one line:
--
--   M.records, M.next = paging.offset { limit = 500 }        -- ?offset=O&limit=L
--   M.records, M.next = paging.cursor { records = "data", cursor = "next_cursor",
--                                       param = "cursor" }   -- {"data":[...],"next_cursor":"..."}
--   M.records, M.next = paging.link()                        -- Link: <...>; rel="next"
--
-- records is nil where the body is the array itself (assigning nil leaves M.records out).
-- Errors name what was wrong with the response; the producer reports them with the
-- source and the page, publishes nothing of that page, and tries again next cycle.
local paging = {}

-- ---- URLs ----------------------------------------------------------------------------

-- RFC 3986 percent-encoding of a query component: unreserved characters stay.
local function encode(v)
  return (tostring(v):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- Percent-decoding; "+" stays "+" (a space only in HTML forms, and cursors are often
-- base64, where it is a letter).
local function decode(v)
  return (v:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- url -> the part before "?", the query (nil without "?"), the fragment (nil without "#").
local function split(url)
  local before, rest = url:match("^([^?#]*)(.*)$")
  local query, fragment = rest:match("^%?([^#]*)#?(.*)$")
  if not query then fragment = rest:match("^#(.*)$") end
  if fragment == "" and not rest:find("#", 1, true) then fragment = nil end
  return before, query, fragment
end

-- The decoded value of the query parameter name in url, or nil.
function paging.query(url, name)
  local _, query = split(url)
  for pair in (query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if decode(k) == name then return decode(v) end
  end
  return nil
end

-- url with the query parameter name set to value (replaced where it was, else appended);
-- the fragment, which is never sent, is dropped.
function paging.set_query(url, name, value)
  local before, query = split(url)
  local out, found = {}, false
  for pair in (query or ""):gmatch("[^&]+") do
    local k = pair:match("^([^=]*)")
    if decode(k) == name then
      if not found then out[#out + 1] = encode(name) .. "=" .. encode(value) end
      found = true
    else
      out[#out + 1] = pair
    end
  end
  if not found then out[#out + 1] = encode(name) .. "=" .. encode(value) end
  return before .. "?" .. table.concat(out, "&")
end

-- RFC 3986 5.2.4: "/a/b/../c/./d" -> "/a/c/d".
local function remove_dots(path)
  local out = {}
  while #path > 0 do
    if path:sub(1, 3) == "../" then
      path = path:sub(4)
    elseif path:sub(1, 2) == "./" then
      path = path:sub(3)
    elseif path:sub(1, 3) == "/./" then
      path = "/" .. path:sub(4)
    elseif path == "/." then
      path = "/"
    elseif path:sub(1, 4) == "/../" then
      path = "/" .. path:sub(5)
      out[#out] = nil
    elseif path == "/.." then
      path = "/"
      out[#out] = nil
    elseif path == "." or path == ".." then
      path = ""
    else
      local seg = path:match("^/?[^/]*")
      out[#out + 1] = seg
      path = path:sub(#seg + 1)
    end
  end
  return table.concat(out)
end

-- RFC 3986 3: scheme, authority, path, query, fragment (nil when absent).
local function parse_uri(u)
  local r = {}
  local scheme, rest = u:match("^(%a[%w+.%-]*):(.*)$")
  r.scheme = scheme
  rest = rest or u
  if rest:sub(1, 2) == "//" then
    r.authority, rest = rest:match("^//([^/?#]*)(.*)$")
  end
  r.path = rest:match("^[^?#]*")
  rest = rest:sub(#r.path + 1)
  if rest:sub(1, 1) == "?" then
    r.query = rest:match("^%?([^#]*)")
    rest = rest:sub(#r.query + 2)
  end
  if rest:sub(1, 1) == "#" then r.fragment = rest:sub(2) end
  return r
end

-- The absolute URL a reference (relative or not) names, seen from the absolute URL base
-- (RFC 3986 5.2: "../b?x" from "http://h/a/c" is "http://h/b?x").
function paging.resolve(base, ref)
  local b, r, t = parse_uri(base), parse_uri(ref), {}
  if not b.scheme then error(("cannot resolve against %q, which is not an absolute URL"):format(base), 2) end
  if r.scheme then
    t.scheme, t.authority, t.path, t.query = r.scheme, r.authority, remove_dots(r.path), r.query
  else
    if r.authority then
      t.authority, t.path, t.query = r.authority, remove_dots(r.path), r.query
    else
      if r.path == "" then
        t.path = b.path
        t.query = r.query or b.query
      else
        if r.path:sub(1, 1) == "/" then
          t.path = remove_dots(r.path)
        elseif b.authority and b.path == "" then
          t.path = remove_dots("/" .. r.path)
        else
          t.path = remove_dots(b.path:match("^(.*/)") .. r.path)
        end
        t.query = r.query
      end
      t.authority = b.authority
    end
    t.scheme = b.scheme
  end
  t.fragment = r.fragment
  return t.scheme .. ":" .. (t.authority and "//" .. t.authority or "") .. t.path ..
    (t.query and "?" .. t.query or "") .. (t.fragment and "#" .. t.fragment or "")
end

-- ---- the Link header (RFC 8288) --------------------------------------------------------

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+"

-- The links of a Link field value: { { target = "<URI-Reference>", params = { rel =
-- "next", ... } }, ... }, parameter names lower-cased, the first of a repeated one kept
-- (RFC 8288 3.3). Raises an error naming the place of anything malformed.
function paging.parse_link(s)
  local links, i, n = {}, 1, #s
  local function fail(why)
    local shown = #s > 120 and s:sub(1, 120) .. "..." or s
    error(("Link header: %s at character %d of %q"):format(why, i, shown), 0)
  end
  local function ows()
    i = s:find("[^ \t]", i) or n + 1
  end
  while true do
    ows()
    if i > n then break end
    if s:sub(i, i) == "," then -- an empty list element (RFC 9110 5.6.1)
      i = i + 1
    else
      if s:sub(i, i) ~= "<" then fail('expected "<" starting a link') end
      local close = s:find(">", i + 1, true)
      if not close then fail('"<" without its ">"') end
      local target = s:sub(i + 1, close - 1)
      if target:find("[%c%s<\"]") then fail("a link target with a space, a quote or a control character") end
      local link = { target = target, params = {} }
      i = close + 1
      while true do
        ows()
        local c = s:sub(i, i)
        if c == "" or c == "," then break end
        if c ~= ";" then fail('expected ";" or "," after a link') end
        i = i + 1
        ows()
        local name = s:match(TOKEN, i)
        if not name then fail("expected a parameter name") end
        i = i + #name
        ows()
        local value = ""
        if s:sub(i, i) == "=" then
          i = i + 1
          ows()
          if s:sub(i, i) == '"' then
            local parts = {}
            i = i + 1
            while true do
              local j = s:find('["\\]', i)
              if not j then fail("a quoted string without its closing quote") end
              parts[#parts + 1] = s:sub(i, j - 1)
              if s:sub(j, j) == '"' then
                i = j + 1
                break
              end
              if j == n then fail("a quoted string ending in a backslash") end
              parts[#parts + 1] = s:sub(j + 1, j + 1)
              i = j + 2
            end
            value = table.concat(parts)
            if value:find("[%z\1-\8\10-\31\127]") then fail("a control character in a quoted string") end
          else
            value = s:match(TOKEN, i)
            if not value then fail('expected a token or a quoted string after "="') end
            i = i + #value
          end
        end
        name = name:lower()
        if link.params[name] == nil then link.params[name] = value end
      end
      links[#links + 1] = link
    end
  end
  return links
end

-- Whether a rel value (relation types separated by spaces, case-insensitive) holds rel.
local function has_rel(value, rel)
  for r in (value or ""):gmatch("%S+") do
    if r:lower() == rel then return true end
  end
  return false
end

-- ---- records ---------------------------------------------------------------------------

local function is_null(v)
  return v == nil or type(v) == "userdata" -- JSON's null decodes to a light userdata
end

local function kind(v)
  if is_null(v) then return "null" end
  if type(v) == "table" then return next(v) == nil and "an empty table" or "an object" end
  return "a " .. type(v)
end

-- v[path] where path may be dotted: "meta.next_cursor".
local function dig(v, path)
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

-- records(body) returning body[path], which must be an array.
local function field_records(path)
  if path == nil then return nil end
  assert(type(path) == "string" and path ~= "", "records must be the name of the body's array field")
  return function(body)
    if type(body) ~= "table" then
      error(("the response is %s, not an object holding a %q array"):format(kind(body), path), 0)
    end
    local r = dig(body, path)
    if r == nil then error(("the response has no %q array"):format(path), 0) end
    if type(r) ~= "table" then
      error(("the response's %q is %s, not an array"):format(path, kind(r)), 0)
    end
    return r
  end
end

local function positive_integer(v, what)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s must be a whole number from 1, got %s"):format(what, tostring(v)), 3)
  end
  return v
end

-- ---- the helpers -----------------------------------------------------------------------

-- ?offset=O&limit=L, the body an array (or opts.records the field holding it). The next
-- page starts where this one ended; a page with no records, or fewer than the URL's
-- limit, is the last. The first page is the source's url: put the limit in it
-- (url = ".../orders?limit=500"), since an API's own page size may be smaller than
-- opts.limit and a short first page would then end the cycle too early. Options: limit
-- (100), offset_param ("offset"), limit_param ("limit"), records (nil).
function paging.offset(opts)
  opts = opts or {}
  local limit = positive_integer(opts.limit or 100, "paging.offset's limit")
  local oparam, lparam = opts.offset_param or "offset", opts.limit_param or "limit"
  local function next_page(response)
    local got = #response.records
    local asked = paging.query(response.url, lparam)
    if got == 0 then return nil end
    if asked then
      asked = tonumber(asked)
      if math.type(asked) ~= "integer" or asked < 1 then
        error(("the URL's %s is not a whole number from 1"):format(lparam), 0)
      end
      if got < asked then return nil end
    end
    local offset = tonumber(paging.query(response.url, oparam) or "0")
    if math.type(offset) ~= "integer" or offset < 0 then
      error(("the URL's %s is not a whole number from 0"):format(oparam), 0)
    end
    local url = paging.set_query(response.url, oparam, offset + got)
    return paging.set_query(url, lparam, asked or limit)
  end
  return field_records(opts.records), next_page
end

-- {"data":[...],"next_cursor":"..."}: the records in body[records], the next page is the
-- same URL with ?<param>=<cursor>; a cursor that is null, missing, false or "" ends the
-- cycle. Options: records ("data"), cursor ("next_cursor"), param ("cursor"); records and
-- cursor may be dotted paths ("meta.next").
function paging.cursor(opts)
  opts = opts or {}
  local cursor, param = opts.cursor or "next_cursor", opts.param or "cursor"
  local function next_page(response)
    local c = dig(response.body, cursor)
    if is_null(c) or c == false or c == "" then return nil end
    if type(c) ~= "string" and math.type(c) ~= "integer" then
      error(("the response's %q is %s, not a string"):format(cursor, kind(c)), 0)
    end
    return paging.set_query(response.url, param, c)
  end
  return field_records(opts.records or "data"), next_page
end

-- Link: <url>; rel="next" (RFC 8288), the target relative or absolute, resolved against
-- the page's URL; no Link header, or none with rel "next", ends the cycle. A malformed
-- header is an error. Options: records (nil: the body is the array).
function paging.link(opts)
  opts = opts or {}
  local function next_page(response)
    local value = response.headers and response.headers.link
    if value == nil then return nil end
    for _, l in ipairs(paging.parse_link(value)) do
      if has_rel(l.params.rel, "next") then
        local url = paging.resolve(response.url, l.target)
        return (url:gsub("#.*$", "")) -- the fragment is never sent
      end
    end
    return nil
  end
  return field_records(opts.records), next_page
end

return paging

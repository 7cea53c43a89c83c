/* The bounded string and table functions (script_strlib.c, lua_pattern.c) against Lua's
 * own: a fixed list of cases and thousands of random patterns run through both, results
 * and error messages compared exactly; then the budget: work that stock Lua would spend
 * seconds, forever or a gigabyte on must stop at the meter's cap, and within an ample
 * budget give stock results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua_pattern.h"
#include "script_strlib.h"

/* ---- fixture: one state, stock libraries and bounded copies ------------------------ */

typedef struct {
    size_t now, peak; /* bytes Lua holds, and the most it ever held */
} mem_track;

typedef struct {
    long cap;     /* charging past this raises "budget exhausted" */
    long charged; /* total asked for */
    long calls;
    long largest; /* largest single charge */
} budget;

typedef struct {
    lua_State *L;
    mem_track mem;
    budget bud;
    jn_script_meter meter;
} fixture;

static void *track_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    mem_track *t = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        t->now -= old;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    t->now = t->now - old + nsize;
    if (t->now > t->peak) t->peak = t->now;
    return p;
}

static void budget_charge(lua_State *L, void *ud, long cost) {
    budget *b = ud;
    b->calls++;
    if (cost > b->largest) b->largest = cost;
    b->charged = cost > LONG_MAX - b->charged ? LONG_MAX : b->charged + cost;
    if (b->charged > b->cap) luaL_error(L, "budget exhausted");
}

/* Serializing results, running a case on both libraries, iterating gmatch. S and T0 are
 * the stock string and table libraries, B and T copies with the bounded functions. */
static const char harness[] =
    "S, T0 = string, table\n"
    "B, T = {}, {}\n"
    "for k, v in pairs(string) do B[k] = v end\n"
    "for k, v in pairs(table) do T[k] = v end\n"
    "local fmt, mtype, concat, pack, unpack = string.format, math.type, table.concat,\n"
    "  table.pack, table.unpack\n"
    "local all = {}\n"
    "for i = 0, 255 do all[#all + 1] = string.char(i) end\n"
    "ALL = concat(all)\n"
    "local function ser(v)\n"
    "  local t = type(v)\n"
    "  if t == 'string' then return fmt('%q', v) end\n"
    "  if t == 'number' then return mtype(v) == 'integer' and fmt('%d', v) or fmt('%a', v) end\n"
    "  if t == 'boolean' or t == 'nil' then return tostring(v) end\n"
    "  return t\n"
    "end\n"
    "function dump(...)\n"
    "  local n = select('#', ...)\n"
    "  local out = {'#' .. n}\n"
    "  for i = 1, n do out[i + 1] = ser((select(i, ...))) end\n"
    "  return concat(out, ' ')\n"
    "end\n"
    /* Every key and value of a table, in a fixed order. */
    "function dumpt(t)\n"
    "  local keys = {}\n"
    "  for k in pairs(t) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b) return ser(a) < ser(b) end)\n"
    "  local out = {}\n"
    "  for _, k in ipairs(keys) do out[#out + 1] = ser(k) .. '=' .. ser(t[k]) end\n"
    "  return '{' .. concat(out, ',') .. '}'\n"
    "end\n"
    /* A table whose reads and writes go through metamethods that log them. */
    "function traced(init, log)\n"
    "  local store = {}\n"
    "  for k, v in pairs(init) do store[k] = v end\n"
    "  return setmetatable({}, {\n"
    "    __index = function(_, k) log[#log + 1] = 'get' .. tostring(k); return store[k] end,\n"
    "    __newindex = function(_, k, v) log[#log + 1] = 'set' .. tostring(k) .. '=' ..\n"
    "      tostring(v); store[k] = v end,\n"
    "    __len = function() log[#log + 1] = 'len'; return #store end}), store\n"
    "end\n"
    /* All results of a gmatch iterator, then one more call after the end. */
    "function collect(it, ...)\n"
    "  if type(it) ~= 'function' then return dump(it, ...) end\n"
    "  local out = {}\n"
    "  for _ = 1, 100 do\n"
    "    local r = pack(it())\n"
    "    out[#out + 1] = dump(unpack(r, 1, r.n))\n"
    "    if r[1] == nil then out[#out + 1] = dump(it()) break end\n"
    "  end\n"
    "  return concat(out, '; ')\n"
    "end\n"
    "local function outcome(ok, ...)\n"
    "  if ok then return 'ok ' .. dump(...) end\n"
    "  return 'error ' .. ser((...))\n"
    "end\n"
    /* find, match, gmatch and gsub (replacement default <%0>) on one library. */
    "function quad(L, s, p, init, r)\n"
    "  r = r or '<%0>'\n"
    "  return concat({\n"
    "    outcome(pcall(function() return L.find(s, p, init) end)),\n"
    "    outcome(pcall(function() return L.match(s, p, init) end)),\n"
    "    outcome(pcall(function() return collect(L.gmatch(s, p, init)) end)),\n"
    "    outcome(pcall(function() return L.gsub(s, p, r) end))}, ' | ')\n"
    "end\n"
    /* body is a chunk with the library as L; both outcomes are returned. */
    "function compare(lib, body)\n"
    "  local f, err = load('local L = ...\\n' .. body, '=case', 't')\n"
    "  if not f then return 'load: ' .. err, '' end\n"
    "  local stock, bounded = S, B\n"
    "  if lib == 'table' then stock, bounded = T0, T end\n"
    "  return outcome(pcall(f, stock)), outcome(pcall(f, bounded))\n"
    "end\n"
    "local REPL = {\n"
    "  func = function(a, b) if a == 'b' then return nil end\n"
    "    if a == 'c' then return false end\n"
    "    return '<' .. tostring(a) .. ',' .. tostring(b) .. '>' end,\n"
    "  tab = {a = 'A', b = false, ab = 1, [1] = 'one', c = 'C'}}\n"
    /* One random case: find, match, gmatch and gsub on both libraries. */
    "function rcase(s, p, init, r, n)\n"
    "  if REPL[r] then r = REPL[r] end\n"
    "  local res = {}\n"
    "  for _, lib in ipairs({S, B}) do\n"
    "    res[#res + 1] = concat({\n"
    "      outcome(pcall(function() return lib.find(s, p, init) end)),\n"
    "      outcome(pcall(function() return lib.find(s, p, init, true) end)),\n"
    "      outcome(pcall(function() return lib.match(s, p, init) end)),\n"
    "      outcome(pcall(function() return collect(lib.gmatch(s, p, init)) end)),\n"
    "      outcome(pcall(function() return lib.gsub(s, p, r, n) end))}, '\\n')\n"
    "  end\n"
    "  return res[1], res[2]\n"
    "end\n";

static fixture *fixture_new(long cap, int with_meter) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->bud.cap = cap;
    f->meter.charge = budget_charge;
    f->meter.ud = &f->bud;
    f->L = lua_newstate(track_alloc, &f->mem);
    assert_non_null(f->L);
    luaL_openlibs(f->L);
    if (luaL_dostring(f->L, harness) != LUA_OK) fail_msg("harness: %s", lua_tostring(f->L, -1));
    lua_getglobal(f->L, "B");
    lua_getglobal(f->L, "T");
    jn_script_strlib_install(f->L, -2, -1, with_meter ? &f->meter : NULL);
    lua_pop(f->L, 2);
    return f;
}

static void fixture_free(fixture *f) {
    lua_close(f->L);
    free(f);
}

/* Runs body on the stock and the bounded library; fails with both outcomes if they
 * differ. Returns 1 when the stock run raised an error. */
static int compare_case(lua_State *L, const char *lib, const char *body) {
    lua_getglobal(L, "compare");
    lua_pushstring(L, lib);
    lua_pushstring(L, body);
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) fail_msg("compare(%s): %s", body, lua_tostring(L, -1));
    const char *stock = lua_tostring(L, -2), *bounded = lua_tostring(L, -1);
    if (strcmp(stock, bounded) != 0)
        fail_msg("case %s\n  stock:   %s\n  bounded: %s", body, stock, bounded);
    if (strncmp(stock, "load:", 5) == 0) fail_msg("case does not compile: %s", stock);
    int err = strstr(stock, "error \"") != NULL;
    lua_pop(L, 2);
    return err;
}

/* ---- fixed differential cases ------------------------------------------------------ */

typedef struct {
    const char *lib;
    const char *body;
} dcase;

/* clang-format off */
#define FIND(args)   {"string", "return L.find(" args ")"}
#define GMATCH(args) {"string", "return collect(L.gmatch(" args "))"}
#define GSUB(args)   {"string", "return L.gsub(" args ")"}
#define REP(args)    {"string", "return L.rep(" args ")"}
#define TAB(body)    {"table", body}
/* A subject and pattern (and init, and replacement) through find, match, gmatch, gsub. */
#define PAT(args)    {"string", "return quad(L, " args ")"}
/* clang-format on */

static const dcase cases[] = {
    /* find: plain searches, init, the plain flag */
    PAT("'hello world', 'o w'"),
    PAT("'hello', 'l'"),
    PAT("'hello', 'xyz'"),
    PAT("'hello', ''"),
    PAT("'hello', '', 10"),
    PAT("'hello', '', 6"),
    PAT("'hello', '', 7"),
    PAT("'hello', 'l', -2"),
    PAT("'hello', 'h', -100"),
    PAT("'hello', 'h', 0"),
    PAT("'hello', 'o', 5"),
    FIND("'a.b', '.', 1, true"),
    PAT("'a.b', '%.'"),
    FIND("'a+b', 'a+', 1, 1"),
    PAT("'a)b', ')'"),
    PAT("'a]b', ']'"),
    PAT("'a\\0b', '\\0'"),
    PAT("'a\\0b', '%z'"),
    PAT("'a\\0b\\0', '[\\0]b%z'"),
    FIND("'abcabc', 'cab', 2, false"),
    PAT("'aaab', 'aab'"),
    PAT("'key=val', '(%w+)=(%w+)'"),
    PAT("'hello', '()ll()'"),
    PAT("'hello', 'l+'"),
    PAT("123456, 34"),
    PAT("'x', 'x', 2^53"),
    /* anchors, and '^' and '$' where they are literal */
    PAT("'abc', '^b'"),
    PAT("'abc', '^a'"),
    PAT("'abc', '^b', 2"),
    PAT("'abc', 'c$'"),
    PAT("'abc', 'b$'"),
    PAT("'a$c', '$c'"),
    PAT("'a$', '$$'"),
    PAT("'a^b', 'a^b'"),
    PAT("'', '^$'"),
    PAT("'aaa', '^a*$'"),
    PAT("'aab', '^a*$'"),
    PAT("'x^', '.^'"),
    /* classes: escapes of punctuation, letters that name no class */
    PAT("'a.b%c(d)e[f]g-h^i$j', '%.%a%%%a%(%a%)%a%[%a%]%a%-%a%^%a%$'"),
    PAT("'q#', '%q%#'"),
    PAT("'Z\\0', '%Z%z'"),
    PAT("'\\0', '%Z'"),
    PAT("'  \\t\\nx', '%s*()'"),
    PAT("'0x1F', '0x(%x+)'"),
    /* sets */
    PAT("'abcabd', '[abc]+'"),
    PAT("'abcxyz', '[^abc]+'"),
    PAT("'deadbeef!', '[a-f]+'"),
    PAT("'_id9 x', '[%a_][%w_]*'"),
    PAT("'x]]y', '[]]+'"),
    PAT("']]xy', '[^]]+'"),
    PAT("'-a-', '[a-]+'"),
    PAT("'-a-', '[-a]+'"),
    PAT("'a]%', '[%]]'"),
    PAT("'a-b', '[%-]'"),
    PAT("'abc', '[z-a]'"),
    PAT("'5-z', '[%d-z]+'"),
    PAT("'abcde-', '[a-c-e]+'"),
    PAT("'ab c', '[^%s]+'"),
    PAT("'ab\\200\\255c', '[\\128-\\255]+'"),
    PAT("'a.b', '[.]'"),
    PAT("'a^b', '[b^]+'"),
    PAT("'a^b', '[%^]'"),
    PAT("'ab12', '[%D]+'"),
    /* quantifiers */
    PAT("'aaab', 'a*'"),
    PAT("'baaa', 'a*'"),
    PAT("'aaab', 'a+'"),
    PAT("'baaa', 'a+'"),
    PAT("'aaab', 'a-b'"),
    PAT("'aaab', 'a-'"),
    PAT("'ab', 'a?b'"),
    PAT("'b', 'a?b'"),
    PAT("'xaxbxb', '(.-)b'"),
    PAT("'xaxbxb', '(.*)b'"),
    PAT("'abab', '[ab]-b$'"),
    PAT("'xxx', 'x*$'"),
    PAT("'*+-?', '*+%-?'"),
    PAT("'aaa', 'a-$'"),
    PAT("'ab', '.?.?.?'"),
    /* captures, position captures, back-references */
    PAT("'ab', '((a)(b))'"),
    PAT("'ab', '()'"),
    PAT("'ab', '()', 3"),
    PAT("'ab', '()', 4"),
    PAT("'aab  c', '(a*(.)%w(%s*))'"),
    PAT("'hello', '(h)(e)(l)(l)(o)'"),
    PAT("'xyyx', '(.)(.)%2%1'"),
    PAT("'say \"hi\" ok', '([\"\\'])(.-)%1'"),
    PAT("'aa', '()a%1'"),
    PAT("'abcabc', '(abc)%1$'"),
    PAT("'abcab', '(abc)%1'"),
    PAT("string.rep('a', 40), string.rep('()', 32)"),
    /* %b and %f */
    PAT("'f(a(b)c) d', '%b()'"),
    PAT("'{{x}{y}} z', '%b{}'"),
    PAT("'(()', '%b()'"),
    PAT("'xabxx', '%bxx'"),
    PAT("'<<a>', '%b<>'"),
    PAT("'THE (quick) fox', '%f[%a]%a+'"),
    PAT("'hello world', '%f[%w]%w+$'"),
    PAT("'abc', '%f[%z]'"),
    PAT("'abc', '()%f[%a]'"),
    PAT("'abc', '%f[%A]()'"),
    PAT("'a,b', '%f[^,]'"),
    /* errors in patterns, raised only when the match reaches them */
    PAT("'abc', 'a%'"),
    PAT("'abc', '%'"),
    PAT("'xyz', 'q%'"),
    PAT("'xq', 'q%'"),
    PAT("'b', 'a['"),
    PAT("'a', 'a['"),
    PAT("'a', '[a'"),
    PAT("'a', '[^'"),
    PAT("'a', '[]'"),
    PAT("'a', '[^]'"),
    PAT("'a', '[%]'"),
    PAT("'a', '[a%'"),
    PAT("'a', '%b'"),
    PAT("'a', '%ba'"),
    PAT("'a', '%f'"),
    PAT("'a', '%fa'"),
    PAT("'a', '%f[a'"),
    PAT("'a', '%1'"),
    PAT("'a', '%0'"),
    PAT("'a', '(a)%2'"),
    PAT("'a', '(a%1)'"),
    PAT("'a', ')'"),
    PAT("'a', 'a)'"),
    PAT("'a', '(a'"),
    PAT("'a', '(()'"),
    PAT("'a', string.rep('()', 33)"),
    PAT("'a', string.rep('(', 40)"),
    PAT("string.rep('a', 300), string.rep('a?', 199)"),
    PAT("string.rep('a', 300), string.rep('a?', 200)"),
    PAT("string.rep('a', 300), string.rep('a-', 199) .. '$'"),
    PAT("string.rep('a', 300), string.rep('a-', 200) .. '$'"),
    PAT("string.rep('a', 300), string.rep('(a)', 31) .. string.rep('a?', 137)"),
    PAT("string.rep('a', 300), string.rep('(a)', 31) .. string.rep('a?', 138)"),
    PAT("string.rep('a', 300), string.rep('a*', 300)"),
    /* argument checks */
    FIND(""),
    FIND("'a'"),
    PAT("'a', {}"),
    PAT("'a', 'a', 'x'"),
    PAT("'a', 'a', 1.5"),
    PAT("'a', 'a', '2'"),
    PAT("nil, 'a'"),
    GMATCH("'a'"),
    GMATCH("'a', 'a', 'x'"),
    GSUB("'a'"),
    GSUB("'a', 'a'"),
    GSUB("'a', 'a', true"),
    GSUB("'a', 'a', nil, 'x'"),
    GSUB("'a', 'a', 'x', 'y'"),
    GSUB("'a', 'a', 'x', 1.5"),
    /* gsub: replacement strings */
    GSUB("'hello world', 'o', '0'"),
    GSUB("'hello world', '(o)', '[%1]'"),
    GSUB("'hello world', '%w+', '<%0>'"),
    GSUB("'hello world', '(%w+) (%w+)', '%2 %1'"),
    GSUB("'abc', '%w', '%1'"),
    GSUB("'abc', '%w', '%2'"),
    GSUB("'abc', '(%w)', '%2'"),
    GSUB("'abc', '%w', '%%'"),
    GSUB("'abc', '%w', '100%'"),
    GSUB("'abc', '%w', '%x'"),
    GSUB("'abc', 'x', '%x'"),
    GSUB("'abc', '%w', '%\\0'"),
    GSUB("'abc', '()', '%1'"),
    GSUB("'abc', '()(b)', '%1%2%0'"),
    GSUB("'abc', 'b', 5"),
    GSUB("'abc', 'b', 1.5"),
    GSUB("'abc', '(', 'x'"),
    GSUB("'abc', '(', '%1'"),
    GSUB("'abc', '', '-'"),
    GSUB("'abc', 'x*', '-'"),
    GSUB("'abc', 'b*', '-'"),
    GSUB("'', '', 'x'"),
    GSUB("'', 'a', 'x'"),
    GSUB("'aaa', '^a', 'b'"),
    GSUB("'aaa', '^', 'b'"),
    GSUB("'aaa', 'a$', 'b'"),
    GSUB("'a\\0b', '%z', '%%0'"),
    /* gsub: functions and tables */
    GSUB("'hello world', '%w+', function(w) return w:upper() end"),
    GSUB("'hello world', '%w+', function(w) return nil end"),
    GSUB("'hello world', '%w+', function(w) return false end"),
    GSUB("'hello world', '%w+', function(w) return #w end"),
    GSUB("'hello world', '%w+', function(w) return {} end"),
    GSUB("'hello world', '%w+', function(w) return true end"),
    GSUB("'k=v, a=b', '(%w+)=(%w+)', function(k, v) return v .. '=' .. k end"),
    GSUB("'abc', '()', function(p) return p end"),
    GSUB("'abc', '(', function(...) return 'x' end"),
    GSUB("'abc', '%w', function(...) error('boom') end"),
    GSUB("'$name is $age', '%$(%w+)', {name = 'Ann', age = 7}"),
    GSUB("'$name is $x', '%$(%w+)', {name = 'Ann'}"),
    GSUB("'$name', '%$(%w+)', {name = false}"),
    GSUB("'$name', '%$(%w+)', {name = {}}"),
    GSUB("'$name', '%$(%w+)', {name = 1.5}"),
    GSUB("'abc', '%w', setmetatable({}, {__index = function(_, k) return k .. k end})"),
    GSUB("'abc', '()', {'one', 'two'}"),
    /* gsub: the number of replacements */
    GSUB("'aaaa', 'a', 'b', 0"),
    GSUB("'aaaa', 'a', 'b', 1"),
    GSUB("'aaaa', 'a', 'b', -1"),
    GSUB("'aaaa', 'a', 'b', 2.0"),
    GSUB("'aaaa', 'a', 'b', '3'"),
    GSUB("'aaaa', 'a', 'b', math.maxinteger"),
    GSUB("'aaaa', '', '-', 2"),
    GSUB("123, 2, 9"),
    /* gmatch: 5.4's init, empty matches, '^' taken literally */
    GMATCH("'one two  three', '%a+'"),
    GMATCH("'k=v, a=b', '(%w+)=(%w+)'"),
    GMATCH("'baaac', 'a*'"),
    GMATCH("'abc', ''"),
    GMATCH("'abc', '()'"),
    GMATCH("'one two three', '%a+', 5"),
    GMATCH("'one two three', '%a+', -5"),
    GMATCH("'one two three', '%a+', 100"),
    GMATCH("'one two three', '%a+', -100"),
    GMATCH("'abc', '', 4"),
    GMATCH("'abc', '', 5"),
    GMATCH("'a^b^', '^b'"),
    GMATCH("'^a', '^a'"),
    GMATCH("'abc', '%w('"),
    GMATCH("'abc', 'b['"),
    GMATCH("'abc', '(a'"),
    GMATCH("'xyz', '%f[%a]'"),
    /* rep */
    REP("'ab', 3"),
    REP("'ab', 3, ','"),
    REP("'ab', 1, ','"),
    REP("'ab', 0"),
    REP("'ab', -1, ','"),
    REP("'', 5"),
    REP("'', 5, ','"),
    REP("'abc', 100, '--'"),
    REP("'a\\0b', 4, '\\0'"),
    REP("12, 2, 3"),
    REP("'x', 2.0"),
    REP("'ab', 2^30"),
    REP("'a', 2^30, 'b'"),
    REP("'a', 2^31"),
    REP("'', 1000000"),
    REP(""),
    REP("'a'"),
    REP("'a', 'x'"),
    REP("'a', 1.5"),
    REP("'a', 2, {}"),
    /* table.insert */
    TAB("local t = {1, 2, 3}; L.insert(t, 4); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; L.insert(t, 1, 0); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; L.insert(t, 2, 9); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; L.insert(t, 4, 9); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.insert(t, 5, 9)"),
    TAB("local t = {1, 2, 3}; return L.insert(t, 0, 9)"),
    TAB("local t = {1, 2, 3}; return L.insert(t, 1.5, 9)"),
    TAB("local t = {1, 2, 3}; return L.insert(t, '2', 9), dumpt(t)"),
    TAB("return L.insert({}, 1, 2, 3)"),
    TAB("return L.insert({})"),
    TAB("return L.insert(nil, 1)"),
    TAB("return L.insert('abc', 1)"),
    TAB("local t = {}; L.insert(t, nil); return dumpt(t)"),
    TAB("local log = {}; local t = traced({1, 2, 3}, log); L.insert(t, 1, 0)\n"
        "return table.concat(log, ' ')"),
    /* table.remove */
    TAB("local t = {1, 2, 3}; return L.remove(t), dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.remove(t, 1), dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.remove(t, 2), dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.remove(t, 4), dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.remove(t, 5)"),
    TAB("local t = {1, 2, 3}; return L.remove(t, 0)"),
    TAB("local t = {}; return L.remove(t), L.remove(t, 0), L.remove(t, 1), dumpt(t)"),
    TAB("local t = {[0] = 'z'}; return L.remove(t, 0), dumpt(t)"),
    TAB("return L.remove({}, 2)"),
    TAB("return L.remove(nil)"),
    TAB("return L.remove({1}, 'x')"),
    TAB("local log = {}; local t = traced({1, 2, 3}, log); local v = L.remove(t, 1)\n"
        "return v, table.concat(log, ' ')"),
    /* table.move */
    TAB("local t = {1, 2, 3, 4, 5}; L.move(t, 1, 3, 3); return dumpt(t)"),
    TAB("local t = {1, 2, 3, 4, 5}; L.move(t, 3, 5, 1); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; local u = {}; return L.move(t, 1, 3, 2, u) == u, dumpt(u)"),
    TAB("local t = {1, 2, 3}; L.move(t, 1, 3, 2, t); return dumpt(t)"),
    TAB("local t = {1, 2, 3}; return L.move(t, 3, 1, 1) == t, dumpt(t)"),
    TAB("local t = {1, 2, 3}; L.move(t, -1, 1, 5); return dumpt(t)"),
    TAB("return L.move({}, 1, 1e15, 2, 5)"),
    TAB("return L.move({}, -1, math.maxinteger, 2)"),
    TAB("return L.move({}, 1, 2, math.maxinteger)"),
    TAB("return L.move({}, 1, 2)"),
    TAB("return L.move({}, 1.5, 2, 1)"),
    TAB("return L.move()"),
    TAB("return L.move(1, 1, 2, 1)"),
    TAB("local log = {}; local t = traced({1, 2, 3}, log); L.move(t, 1, 3, 2)\n"
        "return table.concat(log, ' ')"),
    TAB("local log = {}; local t = traced({1, 2, 3}, log); L.move(t, 2, 3, 1)\n"
        "return table.concat(log, ' ')"),
    TAB("local log = {}; local a = traced({1, 2}, log); local b = traced({}, log)\n"
        "L.move(a, 1, 2, 1, b); return table.concat(log, ' ')"),
    /* table.concat */
    TAB("return L.concat({1, 2, 3})"),
    TAB("return L.concat({1, 2, 3}, ', ')"),
    TAB("return L.concat({1, 2, 3}, ', ', 2)"),
    TAB("return L.concat({1, 2, 3}, ', ', 2, 3)"),
    TAB("return L.concat({1, 2, 3}, ', ', 3, 2)"),
    TAB("return L.concat({1, 2, 3}, ', ', 2, 5)"),
    TAB("return L.concat({1.5, 2^63, 'x', -0.0})"),
    TAB("return L.concat({}, '', 1, 1e15)"),
    TAB("return L.concat({1, {}})"),
    TAB("return L.concat({true})"),
    TAB("return L.concat({io.stdout})"),
    TAB("return L.concat({1, 2}, {}, 1, 2)"),
    TAB("return L.concat('x')"),
    TAB("return L.concat({'a', 'b'}, '\\0')"),
    TAB("local log = {}; return L.concat(traced({'a', 'b'}, log), '-'), table.concat(log, ' ')"),
    /* table.sort */
    TAB("local t = {3, 1, 2}; L.sort(t); return dumpt(t)"),
    TAB("local t = {'b', 'c', 'a'}; L.sort(t); return dumpt(t)"),
    TAB("local t = {3, 1, 2}; L.sort(t, function(a, b) return a > b end); return dumpt(t)"),
    TAB("local t = {}; for i = 1, 80 do t[i] = (i * 37) % 101 end; L.sort(t); return dumpt(t)"),
    TAB("local t = {1}; L.sort(t, 5); return dumpt(t)"),
    TAB("return L.sort({3, 2, 1}, 3)"),
    TAB("return L.sort({1, 'x'})"),
    TAB("return L.sort({3, 2, 1, 4, 5, 6}, function(a, b) error('cmp') end)"),
    TAB("local t = {5, 4, 3, 2, 1, 6, 7, 8, 9, 10, 11, 12}\n"
        "return L.sort(t, function(a, b) return true end)"),
    TAB("return L.sort(nil)"),
    TAB("local t = setmetatable({}, {__len = function() return 2^40 end}); return L.sort(t)"),
    TAB("local t = setmetatable({}, {__len = function() return 'x' end}); return L.sort(t)"),
};

static void test_differential_cases(void **state) {
    (void)state;
    fixture *f = fixture_new(LONG_MAX, 1);
    int errors = 0;
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        errors += compare_case(f->L, cases[i].lib, cases[i].body);
    /* Every character class and its complement, alone and in a set, over all 256 bytes. */
    const char *classes = "acdglpsuwxzACDGLPSUWXZ";
    for (const char *c = classes; *c; c++) {
        char body[128];
        snprintf(body, sizeof body, "return L.gsub(ALL, '%%%c+', '.')", *c);
        compare_case(f->L, "string", body);
        snprintf(body, sizeof body, "return L.gsub(ALL, '[^%%%cb-d]', '')", *c);
        compare_case(f->L, "string", body);
        snprintf(body, sizeof body, "return L.gsub(ALL, '%%f[%%%c]', '|')", *c);
        compare_case(f->L, "string", body);
    }
    print_message("%zu fixed cases (+66 class cases), %d with errors in stock Lua\n", n, errors);
    /* The list must keep exercising errors, not only results. */
    assert_true(n >= 150);
    assert_true(errors >= 60);
    fixture_free(f);
}

/* The same comparisons through functions installed without a meter. */
static void test_no_meter(void **state) {
    (void)state;
    fixture *f = fixture_new(0, 0);
    compare_case(f->L, "string", "return L.find(string.rep('a', 50), '.-.-b')");
    compare_case(f->L, "string", "return L.gsub('hello world', '(o)', '[%1]')");
    compare_case(f->L, "string", "return L.rep('ab', 1000, ',')");
    compare_case(f->L, "table", "local t = {3, 1, 2}; L.sort(t); return dumpt(t)");
    assert_int_equal(f->bud.calls, 0);
    fixture_free(f);
}

/* ---- random differential cases ----------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static unsigned rnd(unsigned n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)((rng_state >> 11) % n);
}

static const char *pick(const char *const *list, size_t n) {
    return list[rnd((unsigned)n)];
}

#define PICK(list) pick(list, sizeof list / sizeof list[0])

static const char *const items[] = {
    "a",    "b",     "c",    "a",  "b",  ".",  "%a",   "%d",   "%s",    "%w",
    "%p",   "%A",    "%S",   "%%", "%.", "%(", "[ab]", "[^a]", "[a-c]", "[%d%s]",
    "[]a]", "[^]b]", "[a-]", "x",  " ",  "(",  ")",    "1",    "[%a_]", "%x"};
static const char *const quants[] = {"", "", "", "*", "+", "-", "?"};
static const char *const specials[] = {"()",     "%1",     "%2",    "%b()", "%bab",
                                       "%f[%w]", "%f[%W]", "%f[a]", "$",    "^"};
static const char *const broken[] = {"(", ")", "[", "%", "[a", "%b", "%f", "%0", "%9"};
static const char subject_chars[] = "aaabbbc  ()1.%x]^$";
static const char *const repls[] = {"x",  "%0", "%1",   "%2",  "<%1|%0>", "%%",  "%",
                                    "%x", "",   "func", "tab", "func",    "tab", "%1%1"};

static void append(char *buf, size_t cap, const char *s) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s", s);
}

static void random_pattern(char *p, size_t cap) {
    p[0] = '\0';
    if (rnd(5) == 0) append(p, cap, "^");
    int n = 1 + (int)rnd(5);
    for (int i = 0; i < n; i++) {
        unsigned kind = rnd(100);
        if (kind < 66) {
            append(p, cap, PICK(items));
            append(p, cap, PICK(quants));
        } else if (kind < 80) {
            append(p, cap, "(");
            for (int j = (int)rnd(2); j >= 0; j--) {
                append(p, cap, PICK(items));
                append(p, cap, PICK(quants));
            }
            append(p, cap, ")");
        } else if (kind < 94) {
            append(p, cap, PICK(specials));
        } else {
            append(p, cap, PICK(broken));
        }
    }
    if (rnd(7) == 0) append(p, cap, "$");
}

static void test_differential_random(void **state) {
    (void)state;
    fixture *f = fixture_new(LONG_MAX, 1);
    lua_State *L = f->L;
    enum { CASES = 6000 };
    int matched = 0, errors = 0, mismatches = 0;
    for (int i = 0; i < CASES; i++) {
        char p[128], s[32];
        random_pattern(p, sizeof p);
        size_t ls = rnd(15);
        for (size_t j = 0; j < ls; j++)
            s[j] = subject_chars[rnd(sizeof subject_chars - 1)];
        static const int inits[] = {1, 2, -1, -3, 0, 5, 20};
        int init = rnd(2) ? inits[rnd(7)] : INT_MIN;
        const char *repl = PICK(repls);
        static const int maxn[] = {0, 1, 2, -1};
        int n = rnd(3) == 0 ? maxn[rnd(4)] : INT_MIN;

        lua_getglobal(L, "rcase");
        lua_pushlstring(L, s, ls);
        lua_pushstring(L, p);
        if (init == INT_MIN)
            lua_pushnil(L);
        else
            lua_pushinteger(L, init);
        lua_pushstring(L, repl);
        if (n == INT_MIN)
            lua_pushnil(L);
        else
            lua_pushinteger(L, n);
        if (lua_pcall(L, 5, 2, 0) != LUA_OK) fail_msg("rcase: %s", lua_tostring(L, -1));
        const char *stock = lua_tostring(L, -2), *bounded = lua_tostring(L, -1);
        if (strcmp(stock, bounded) != 0 && ++mismatches <= 5)
            print_error("subject \"%.*s\" pattern \"%s\" init %d repl \"%s\"\n  stock:\n%s\n"
                        "  bounded:\n%s\n",
                        (int)ls, s, p, init, repl, stock, bounded);
        if (strncmp(stock, "error", 5) == 0)
            errors++;
        else if (strncmp(stock, "ok #1 nil", 9) != 0)
            matched++;
        lua_pop(L, 2);
    }
    print_message("random cases: %d matched, %d errors, %d found nothing\n", matched, errors,
                  CASES - matched - errors);
    if (mismatches) fail_msg("%d of %d random cases differ", mismatches, CASES);
    /* The generator must keep producing matches, misses and errors alike. */
    assert_true(matched > CASES / 6);
    assert_true(errors > CASES / 10);
    assert_true(CASES - matched - errors > CASES / 4);
    fixture_free(f);
}

/* ---- the matcher core on its own --------------------------------------------------- */

static jmp_buf core_jump;
static long core_charged, core_calls;

static void core_charge(void *ud, long steps) {
    long cap = *(long *)ud;
    core_charged += steps;
    core_calls++;
    if (core_charged > cap) longjmp(core_jump, 1);
}

/* Charges come every JN_LUA_PATTERN_CHARGE_EVERY steps, and a callback that jumps out
 * ends the match there. */
static void test_core_charges_and_jumps(void **state) {
    (void)state;
    char s[300];
    memset(s, 'a', sizeof s);
    const char *p = ".-.-.-b";
    static long cap = 1000000;
    jn_lua_pattern m;
    jn_lua_pattern_init(&m, s, sizeof s, p, strlen(p), core_charge, &cap);
    core_charged = core_calls = 0;
    if (setjmp(core_jump) == 0) {
        const char *e;
        jn_lua_pattern_match(&m, s, &e);
        fail_msg("a match of 300^4/24 steps finished within a cap of %ld", cap);
    }
    assert_true(core_charged > cap);
    assert_true(core_charged <= cap + 2 * JN_LUA_PATTERN_CHARGE_EVERY);
    assert_true(core_calls >= cap / (2 * JN_LUA_PATTERN_CHARGE_EVERY));

    /* A short match charges nothing until flushed, then what it counted. */
    core_charged = core_calls = 0;
    jn_lua_pattern_init(&m, "key=value", 9, "(%w+)=(%w+)", 11, core_charge, &cap);
    const char *e;
    assert_int_equal(jn_lua_pattern_match(&m, m.src, &e), JN_LUA_PATTERN_MATCH);
    assert_ptr_equal(e, m.src_end);
    assert_int_equal(core_calls, 0);
    jn_lua_pattern_flush(&m);
    assert_int_equal(core_calls, 1);
    assert_true(core_charged > 9);
    assert_int_equal(jn_lua_pattern_count(&m, 1), 2);
    const char *str;
    size_t len;
    assert_int_equal(jn_lua_pattern_capture(&m, 1, m.src, e, &str, &len), JN_LUA_PATTERN_STRING);
    assert_int_equal(len, 5);
    assert_memory_equal(str, "value", 5);
    assert_int_equal(jn_lua_pattern_capture(&m, 2, m.src, e, &str, &len), JN_LUA_PATTERN_ERROR);
    assert_string_equal(m.error, "invalid capture index %3");

    jn_lua_pattern_init(&m, "a", 1, "[a", 2, NULL, NULL);
    assert_int_equal(jn_lua_pattern_match(&m, m.src, &e), JN_LUA_PATTERN_ERROR);
    assert_string_equal(m.error, "malformed pattern (missing ']')");
    assert_true(jn_lua_pattern_is_plain("a)b]c", 5));
    assert_false(jn_lua_pattern_is_plain("a\0.", 3));
}

/* ---- budgets ----------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs code; it must fail with the budget's error. */
static void expect_budget_error(fixture *f, const char *code) {
    if (luaL_dostring(f->L, code) == LUA_OK)
        fail_msg("%s ran within a cap of %ld", code, f->bud.cap);
    /* luaL_error puts the position of the calling Lua line first. */
    const char *msg = lua_tostring(f->L, -1);
    const char *want = "]:1: budget exhausted";
    if (strlen(msg) < strlen(want) || strcmp(msg + strlen(msg) - strlen(want), want) != 0)
        fail_msg("%s: %s", code, msg);
    lua_pop(f->L, 1);
}

/* Runs code returning a boolean; it must succeed and return true. */
static void expect_true(fixture *f, const char *code) {
    if (luaL_dostring(f->L, code) != LUA_OK) fail_msg("%s: %s", code, lua_tostring(f->L, -1));
    if (!lua_toboolean(f->L, -1)) fail_msg("%s returned false", code);
    lua_pop(f->L, 1);
}

/* About 10^10 steps of backtracking stop at a cap of 10^7, in a fraction of a second. */
static void test_budget_backtracking(void **state) {
    (void)state;
    fixture *f = fixture_new(10000000, 1);
    double t0 = now_s();
    expect_budget_error(f, "return B.find(string.rep('a', 400), '.-.-.-b')");
    double took = now_s() - t0;
    assert_true(f->bud.charged > f->bud.cap);
    assert_true(f->bud.charged <= f->bud.cap + 2 * JN_LUA_PATTERN_CHARGE_EVERY);
    assert_true(f->bud.calls > 1000); /* charged as it went, not at the end */
    if (took > 3.0) fail_msg("stopping took %.2f s", took);

    /* gmatch and gsub stop the same way. */
    f->bud.charged = 0;
    expect_budget_error(f, "for _ in B.gmatch(string.rep('a', 400), '.-.-.-b') do end");
    assert_true(f->bud.charged <= f->bud.cap + 2 * JN_LUA_PATTERN_CHARGE_EVERY);
    f->bud.charged = 0;
    expect_budget_error(f, "return B.gsub(string.rep('a', 400), '.-.-.-b', '')");
    assert_true(f->bud.charged <= f->bud.cap + 2 * JN_LUA_PATTERN_CHARGE_EVERY);

    /* A long set costs in proportion to its length at every subject position (10^9
     * comparisons here, against 2 * 10^5 matching steps). */
    f->bud.charged = 0;
    expect_budget_error(f,
                        "return B.find(string.rep('b', 100000), '[' .. string.rep('a', 10000) .. "
                        "']')");
    f->bud.charged = 0;
    expect_budget_error(f, "return B.find(string.rep('b', 100000), '%f[' .. string.rep('a', 10000) "
                           ".. ']')");
    fixture_free(f);
}

/* A move over 10^15 slots is refused before the first one. */
static void test_budget_move(void **state) {
    (void)state;
    fixture *f = fixture_new(1000000, 1);
    expect_budget_error(f, "t = {}; return T.move(t, 1, 1e15, 2)");
    assert_true(f->bud.largest >= 1000000000000000L);
    expect_true(f, "return next(t) == nil");
    fixture_free(f);
}

/* A gigabyte rep is refused before its buffer is allocated. */
static void test_budget_rep(void **state) {
    (void)state;
    fixture *f = fixture_new(1000000, 1);
    size_t before = f->mem.now;
    f->mem.peak = before;
    expect_budget_error(f, "return B.rep('x', 1e9)");
    assert_true(f->bud.largest >= 1000000000L / 16);
    assert_true(f->mem.peak - before < 1024 * 1024);
    expect_budget_error(f, "return B.rep('ab', 1e8, ',')");
    assert_true(f->mem.peak - before < 1024 * 1024);
    fixture_free(f);
}

/* Sorting 10^6 elements is refused before any comparison: the array stays as it was. */
static void test_budget_sort(void **state) {
    (void)state;
    fixture *f = fixture_new(1000000, 1);
    expect_true(f, "t = {}; for i = 1, 1000000 do t[i] = 1000000 - i end; return true");
    expect_budget_error(f, "T.sort(t)");
    assert_true(f->bud.largest >= 1000000L * 19);
    expect_true(f, "return t[1] == 999999 and t[500000] == 500000 and t[1000000] == 0");
    fixture_free(f);
}

/* Inserting or removing at the front of a big array is charged for the shift, before it. */
static void test_budget_insert_remove(void **state) {
    (void)state;
    fixture *f = fixture_new(1000, 1);
    expect_true(f, "t = {}; for i = 1, 100000 do t[i] = i end; return true");
    expect_budget_error(f, "T.insert(t, 1, 0)");
    assert_int_equal(f->bud.largest, 100000);
    expect_true(f, "return t[1] == 1 and t[100000] == 100000 and t[100001] == nil");
    f->bud.charged = f->bud.largest = 0;
    expect_budget_error(f, "T.remove(t, 1)");
    assert_int_equal(f->bud.largest, 99999);
    expect_true(f, "return t[1] == 1 and t[2] == 2 and #t == 100000");
    /* At the end nothing shifts and nothing is charged. */
    f->bud.charged = 0;
    expect_true(f, "T.insert(t, 0); return T.remove(t) == 0 and T.remove(t, #t + 1) == nil");
    assert_int_equal(f->bud.charged, 0);
    fixture_free(f);
}

/* concat is charged as it goes: a big table stops near the cap. */
static void test_budget_concat(void **state) {
    (void)state;
    fixture *f = fixture_new(100000, 1);
    expect_true(f, "t = {}; for i = 1, 1000000 do t[i] = 'x' end; return true");
    expect_budget_error(f, "return T.concat(t, ',')");
    assert_true(f->bud.charged <= f->bud.cap + 2 * JN_LUA_PATTERN_CHARGE_EVERY);
    fixture_free(f);
}

/* gsub's output is charged by size: %0 repeated in the replacement cannot build a
 * gigabyte from a small subject with few matching steps. */
static void test_budget_gsub_output(void **state) {
    (void)state;
    fixture *f = fixture_new(1000000, 1);
    size_t before = f->mem.now;
    f->mem.peak = before;
    expect_budget_error(f, "return B.gsub(string.rep('a', 100000), '.+', string.rep('%0', 10000))");
    assert_true(f->mem.peak - before < 64 * 1024 * 1024);
    fixture_free(f);
}

/* With an ample budget everything gives stock results, and what it charges follows the
 * work done. */
static void test_ample_budget(void **state) {
    (void)state;
    fixture *f = fixture_new(LONG_MAX / 2, 1);
    expect_true(f, "return B.rep('x', 1000000) == S.rep('x', 1000000)");
    assert_int_equal(f->bud.charged, 1000000 / 16);

    f->bud.charged = 0;
    expect_true(f, "return B.rep('abc', 33333, ', ') == S.rep('abc', 33333, ', ')");
    expect_true(f, "return B.rep('abc', 7, '') == S.rep('abc', 7, '')");

    f->bud.charged = 0;
    expect_true(f, "return select('#', B.find(string.rep('a', 60), '.-.-.-b')) == 1");
    assert_true(f->bud.charged > 60L * 60 * 60 * 60 / 24);

    /* A 1600-character set costs 100 steps to find its end and 100 to test a character
     * against it, at each of 1000 positions. */
    f->bud.charged = 0;
    expect_true(f, "return B.find(string.rep('b', 1000), '[' .. string.rep('a', 1600) .. ']') "
                   "== nil");
    assert_in_range(f->bud.charged, 200000, 210000);
    f->bud.charged = 0;
    expect_true(f, "return B.find(string.rep('b', 1000), '%f[' .. string.rep('a', 1600) .. ']') "
                   "== nil");
    assert_in_range(f->bud.charged, 200000, 210000);

    /* A plain search is charged a unit per 64 bytes scanned, with or without plain=true. */
    f->bud.charged = 0;
    expect_true(f, "return B.find(string.rep('a', 640000), 'b', 1, true) == nil");
    assert_int_equal(f->bud.charged, 10000);
    f->bud.charged = 0;
    expect_true(f, "return B.find(string.rep('a', 64000) .. 'b', 'ab') == 64000");
    assert_int_equal(f->bud.charged, 1000);

    expect_true(f, "local s = string.rep('ab(c)d ', 5000)\n"
                   "local a, n = B.gsub(s, '%((%w)%)', '<%1>')\n"
                   "local b, m = S.gsub(s, '%((%w)%)', '<%1>')\n"
                   "return a == b and n == m and n == 5000");

    f->bud.charged = 0;
    expect_true(f, "local t, u = {}, {}\n"
                   "for i = 1, 100000 do t[i] = (i * 7919) % 100003; u[i] = t[i] end\n"
                   "T.sort(t); T0.sort(u)\n"
                   "for i = 1, 100000 do if t[i] ~= u[i] then return false end end\n"
                   "return true");
    assert_int_equal(f->bud.charged, 100000L * 16);

    f->bud.charged = 0;
    expect_true(f, "local t = {}; for i = 1, 1000 do t[i] = i end\n"
                   "T.move(t, 1, 1000, 2); return t[1] == 1 and t[2] == 1 and t[1001] == 1000");
    assert_int_equal(f->bud.charged, 1000);

    expect_true(f, "local t = {}; for i = 1, 10000 do t[i] = i end\n"
                   "return T.concat(t, ',') == T0.concat(t, ',')");
    fixture_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_cases),   cmocka_unit_test(test_no_meter),
        cmocka_unit_test(test_differential_random),  cmocka_unit_test(test_core_charges_and_jumps),
        cmocka_unit_test(test_budget_backtracking),  cmocka_unit_test(test_budget_move),
        cmocka_unit_test(test_budget_rep),           cmocka_unit_test(test_budget_sort),
        cmocka_unit_test(test_budget_insert_remove), cmocka_unit_test(test_budget_concat),
        cmocka_unit_test(test_budget_gsub_output),   cmocka_unit_test(test_ample_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

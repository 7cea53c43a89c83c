/* Lua bindings of the bounded string and table functions (see script_strlib.h).
 *
 * Every function keeps Lua 5.4's argument checks in the same order, so a bad call fails
 * with the same message as the stock function; the names in those messages come from the
 * call site ('find', 'insert'), as they do for the stock functions called from a script.
 *
 * Work is charged to the meter (upvalue 1, a light userdata) in cost units of about one VM
 * instruction. The meter's charge may raise a Lua error, so nothing here holds malloc'd
 * memory across a charge: matcher state lives on the C stack (or in the gmatch closure's
 * userdata) and results are built in luaL_Buffers, which Lua frees. Where the work is known
 * up front (rep, move, insert, remove, sort) it is charged before any of it is done;
 * matching, gsub's output and concat are charged as they go, since they can stop early. */
#define _GNU_SOURCE /* memmem */
#include "script_strlib.h"

#include <ctype.h>
#include <lauxlib.h>
#include <limits.h>
#include <string.h>

#include "lua_pattern.h"

/* Bytes of result copied per cost unit (memcpy moves ~16 bytes in the time of one VM
 * instruction), and bytes scanned per unit by the plain search. */
#define COPY_BYTES_PER_UNIT 16
#define SCAN_BYTES_PER_UNIT 64

/* string.rep's limit on the result, as in Lua 5.4 ("resulting string too large"). */
#define REP_MAX ((size_t)INT_MAX)

/* table.* flags of what a non-table argument's metatable must provide. */
#define TAB_R 1 /* __index */
#define TAB_W 2 /* __newindex */
#define TAB_L 4 /* __len */

#define METER_UPVALUE lua_upvalueindex(1)

static jn_script_meter *meter_of(lua_State *L) {
    return lua_touserdata(L, METER_UPVALUE);
}

static void charge(lua_State *L, const jn_script_meter *meter, long cost) {
    if (cost > 0 && meter && meter->charge) meter->charge(L, meter->ud, cost);
}

/* Accumulates small charges (one per table element) into fewer meter calls. */
typedef struct {
    lua_State *L;
    const jn_script_meter *meter;
    long due;
} pending_charge;

static void pending_add(pending_charge *pc, long cost) {
    pc->due += cost;
    if (pc->due >= JN_LUA_PATTERN_CHARGE_EVERY) {
        long due = pc->due;
        pc->due = 0;
        charge(pc->L, pc->meter, due);
    }
}

static void pending_flush(pending_charge *pc) {
    long due = pc->due;
    pc->due = 0;
    charge(pc->L, pc->meter, due);
}

/* The matcher's charge callback: ud is a pending_charge whose due is unused. */
static void charge_steps(void *ud, long steps) {
    pending_charge *pc = ud;
    charge(pc->L, pc->meter, steps);
}

static long copy_cost(size_t bytes) {
    return (long)(bytes / COPY_BYTES_PER_UNIT);
}

/* ---- string: matching -------------------------------------------------------------- */

/* The 0-based start for a 1-based init that may count from the end (-1 is the last
 * byte); 0 and anything before the start mean the start. May exceed len. */
static size_t start_offset(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len) return 0;
    return len - (size_t)(-pos);
}

static void raise_pattern_error(lua_State *L, const jn_lua_pattern *m) {
    luaL_error(L, "%s", m->error);
}

static void push_capture(lua_State *L, jn_lua_pattern *m, int i, const char *s, const char *e) {
    const char *str;
    size_t len;
    switch (jn_lua_pattern_capture(m, i, s, e, &str, &len)) {
    case JN_LUA_PATTERN_STRING:
        jn_lua_pattern_charge(m, copy_cost(len));
        lua_pushlstring(L, str, len);
        break;
    case JN_LUA_PATTERN_POSITION:
        lua_pushinteger(L, (lua_Integer)len);
        break;
    default:
        raise_pattern_error(L, m);
    }
}

/* Pushes the captures of the last match (s..e); with s NULL a pattern without captures
 * pushes nothing, else its whole match. */
static int push_captures(lua_State *L, jn_lua_pattern *m, const char *s, const char *e) {
    int n = jn_lua_pattern_count(m, s != NULL);
    luaL_checkstack(L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(L, m, i, s, e);
    return n;
}

static int find_aux(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    pending_charge pc = {L, meter_of(L), 0};
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || jn_lua_pattern_is_plain(p, lp))) {
        /* glibc's memmem is linear in the subject, so a plain search needs only a charge
         * for what it scanned. */
        const char *hit = memmem(s + init, ls - init, p, lp);
        size_t scanned = hit ? (size_t)(hit - (s + init)) + lp : ls - init;
        charge(L, pc.meter, (long)(scanned / SCAN_BYTES_PER_UNIT));
        if (!hit) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    jn_lua_pattern m;
    int anchor = lp > 0 && *p == '^';
    jn_lua_pattern_init(&m, s, ls, p + anchor, lp - (size_t)anchor, charge_steps, &pc);
    const char *at = s + init;
    do {
        const char *e;
        int r = jn_lua_pattern_match(&m, at, &e);
        if (r == JN_LUA_PATTERN_ERROR) raise_pattern_error(L, &m);
        if (r == JN_LUA_PATTERN_MATCH) {
            int n;
            if (find) {
                lua_pushinteger(L, (lua_Integer)(at - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                n = push_captures(L, &m, NULL, NULL) + 2;
            } else {
                n = push_captures(L, &m, at, e);
            }
            jn_lua_pattern_flush(&m);
            return n;
        }
    } while (at++ < m.src_end && !anchor);
    jn_lua_pattern_flush(&m);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L) {
    return find_aux(L, 1);
}

static int str_match(lua_State *L) {
    return find_aux(L, 0);
}

/* gmatch's iterator state, a userdata kept by the iterator with the subject and pattern
 * strings it points into (Lua never moves strings). */
typedef struct {
    jn_lua_pattern m;
    size_t next;           /* where the next search starts; len + 1 once past the end */
    const char *lastmatch; /* end of the last match: an empty match there is skipped */
} gmatch_state;

static int gmatch_step(lua_State *L) {
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(4));
    /* The charge context lives on this call's stack (the iterator may run in any
     * coroutine); the matcher only uses it during this call. */
    pending_charge pc = {L, meter_of(L), 0};
    g->m.ud = &pc;
    size_t len = (size_t)(g->m.src_end - g->m.src);
    for (size_t i = g->next; i <= len; i++) {
        const char *at = g->m.src + i, *e;
        int r = jn_lua_pattern_match(&g->m, at, &e);
        if (r == JN_LUA_PATTERN_ERROR) raise_pattern_error(L, &g->m);
        if (r == JN_LUA_PATTERN_MATCH && e != g->lastmatch) {
            g->next = (size_t)(e - g->m.src);
            g->lastmatch = e;
            int n = push_captures(L, &g->m, at, e);
            jn_lua_pattern_flush(&g->m);
            return n;
        }
    }
    jn_lua_pattern_flush(&g->m);
    return 0;
}

static int str_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2);
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    /* No anchor here: gmatch takes a leading '^' literally, as Lua 5.4 does. */
    jn_lua_pattern_init(&g->m, s, ls, p, lp, charge_steps, NULL);
    g->next = init > ls ? ls + 1 : init;
    g->lastmatch = NULL;
    lua_pushvalue(L, METER_UPVALUE);
    lua_insert(L, 1);
    lua_pushcclosure(L, gmatch_step, 4); /* meter, subject, pattern, state */
    return 1;
}

/* Appends the replacement string (argument 3) for the match s..e: "%0" is the match,
 * "%1".."%9" captures, "%%" a percent sign. */
static void add_template(lua_State *L, jn_lua_pattern *m, luaL_Buffer *b, const char *s,
                         const char *e) {
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l;
    jn_lua_pattern_charge(m, copy_cost(l));
    for (;;) {
        const char *pct = memchr(r, '%', (size_t)(end - r));
        if (!pct) break;
        luaL_addlstring(b, r, (size_t)(pct - r));
        char c = pct + 1 < end ? pct[1] : '\0'; /* a '%' at the end is an error below */
        r = pct + 1 < end ? pct + 2 : end;
        if (c == '%') {
            luaL_addchar(b, '%');
        } else if (c == '0') {
            jn_lua_pattern_charge(m, copy_cost((size_t)(e - s)));
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)c)) {
            const char *str;
            size_t len;
            int kind = jn_lua_pattern_capture(m, c - '1', s, e, &str, &len);
            if (kind == JN_LUA_PATTERN_ERROR) raise_pattern_error(L, m);
            if (kind == JN_LUA_PATTERN_POSITION) {
                lua_pushinteger(L, (lua_Integer)len);
                luaL_addvalue(b);
            } else {
                jn_lua_pattern_charge(m, copy_cost(len));
                luaL_addlstring(b, str, len);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", '%');
        }
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

/* Appends the replacement of the match s..e; returns whether it changed the text (a
 * function or table giving false or nil keeps the match). */
static int add_value(lua_State *L, jn_lua_pattern *m, luaL_Buffer *b, const char *s, const char *e,
                     int tr) {
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(L, m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(L, m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(L, m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    size_t len;
    lua_tolstring(L, -1, &len);
    jn_lua_pattern_charge(m, copy_cost(len));
    luaL_addvalue(b);
    return 1;
}

static int str_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    pending_charge pc = {L, meter_of(L), 0};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    jn_lua_pattern m;
    int anchor = lp > 0 && *p == '^';
    jn_lua_pattern_init(&m, src, srcl, p + anchor, lp - (size_t)anchor, charge_steps, &pc);
    const char *at = src, *lastmatch = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max_s) {
        const char *e;
        int r = jn_lua_pattern_match(&m, at, &e);
        if (r == JN_LUA_PATTERN_ERROR) raise_pattern_error(L, &m);
        if (r == JN_LUA_PATTERN_MATCH && e != lastmatch) {
            n++;
            changed = add_value(L, &m, &b, at, e, tr) | changed;
            at = lastmatch = e;
        } else if (at < m.src_end) {
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        jn_lua_pattern_charge(&m, copy_cost((size_t)(m.src_end - at)));
        luaL_addlstring(&b, at, (size_t)(m.src_end - at));
        luaL_pushresult(&b);
    }
    jn_lua_pattern_flush(&m);
    lua_pushinteger(L, n);
    return 2;
}

/* ---- string.rep -------------------------------------------------------------------- */

static int str_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    /* Lua's test: n copies of s and of sep (one more sep than the result has) must fit. */
    size_t unit = l + lsep;
    if (unit < l || (unit > 0 && (lua_Unsigned)n > REP_MAX / unit))
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
    if (total == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    charge(L, meter_of(L), copy_cost(total));
    /* s, then n - 1 units of sep..s, doubled from what is written so far: log n memcpy
     * calls instead of n. */
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    memcpy(out, s, l);
    size_t done = l;
    if (n > 1) {
        memcpy(out + done, sep, lsep);
        memcpy(out + done + lsep, s, l);
        done += unit;
        while (done < total) {
            size_t chunk = done - l;
            if (chunk > total - done) chunk = total - done;
            memcpy(out + done, out + l, chunk);
            done += chunk;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* ---- table ------------------------------------------------------------------------- */

static int has_metafield(lua_State *L, const char *name) {
    lua_pushstring(L, name);
    int t = lua_rawget(L, -2);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* Like Lua's table functions, accepts a table or any value whose metatable has the
 * metamethods the operation uses. */
static void check_table(lua_State *L, int arg, int need) {
    if (lua_type(L, arg) == LUA_TTABLE) return;
    int ok = 0;
    if (lua_getmetatable(L, arg)) {
        ok = (!(need & TAB_R) || has_metafield(L, "__index")) &&
             (!(need & TAB_W) || has_metafield(L, "__newindex")) &&
             (!(need & TAB_L) || has_metafield(L, "__len"));
        lua_pop(L, 1);
    }
    if (!ok) luaL_checktype(L, arg, LUA_TTABLE);
}

/* b - a for a < b, clamped to what a cost can hold. */
static long span(lua_Integer a, lua_Integer b) {
    lua_Unsigned d = (lua_Unsigned)b - (lua_Unsigned)a;
    return d > (lua_Unsigned)LONG_MAX ? LONG_MAX : (long)d;
}

static int tab_insert(lua_State *L) {
    check_table(L, 1, TAB_R | TAB_W | TAB_L);
    /* The first empty slot, wrapping as Lua's integer arithmetic does. */
    lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u);
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        if (e > pos) charge(L, meter_of(L), span(pos, e));
        for (lua_Integer i = e; i > pos; i--) { /* shift up */
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tab_remove(lua_State *L) {
    check_table(L, 1, TAB_R | TAB_W | TAB_L);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    /* Lua 5.4 names argument #1 in this message, though the position is #2. */
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    if (pos < size) charge(L, meter_of(L), span(pos, size));
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) { /* shift down */
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int tab_move(lua_State *L) {
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    check_table(L, 1, TAB_R);
    check_table(L, tt, TAB_W);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        charge(L, meter_of(L), n > LONG_MAX ? LONG_MAX : (long)n);
        /* Backwards only when the ranges overlap within one table, so no element is
         * overwritten before it is read. */
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

static void concat_field(lua_State *L, luaL_Buffer *b, lua_Integer i, pending_charge *pc) {
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1),
                   (LUAI_UACINT)i);
    size_t len;
    lua_tolstring(L, -1, &len);
    pending_add(pc, 1 + copy_cost(len));
    luaL_addvalue(b);
}

static int tab_concat(lua_State *L) {
    check_table(L, 1, TAB_R | TAB_L);
    lua_Integer last = luaL_len(L, 1);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    /* Charged per element as it goes, not up front: a range far past the table's end
     * fails at its first nil, as in Lua, instead of being billed in full. */
    pending_charge pc = {L, meter_of(L), 0};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        concat_field(L, &b, i, &pc);
        pending_add(&pc, copy_cost(lsep));
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last) concat_field(L, &b, i, &pc);
    pending_flush(&pc);
    luaL_pushresult(&b);
    return 1;
}

/* Charges n*log2(n) comparisons, then lets the stock sort (upvalue 2) do them: its order
 * of comparisons, its handling of equal elements and its "invalid order function for
 * sorting" stay exactly Lua's. The checks the stock sort makes on its arguments are made
 * here first, so their errors name this function as the caller knows it. */
static int tab_sort(lua_State *L) {
    check_table(L, 1, TAB_R | TAB_W | TAB_L);
    lua_Integer n = luaL_len(L, 1);
    if (n <= 1) return 0;
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    long log2n = 0;
    for (lua_Integer k = n; k > 1; k >>= 1)
        log2n++;
    charge(L, meter_of(L), (long)n * log2n);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        /* The stock sort's own error has no position, its caller being C here; called from
         * a script it names the script's line, so it is raised again from this function.
         * Any other error (from a comparator, a metamethod, the meter) already says where
         * it came from and goes on unchanged. */
        if (lua_type(L, -1) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), "invalid order function for sorting") == 0)
            return luaL_error(L, "invalid order function for sorting");
        return lua_error(L);
    }
    return 0;
}

/* ---- install ----------------------------------------------------------------------- */

static void set_closure(lua_State *L, int lib, const char *name, lua_CFunction fn,
                        jn_script_meter *m) {
    lua_pushlightuserdata(L, m);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, lib, name);
}

void jn_script_strlib_install(lua_State *L, int string_idx, int table_idx, jn_script_meter *m) {
    if (string_idx) {
        int lib = lua_absindex(L, string_idx);
        set_closure(L, lib, "find", str_find, m);
        set_closure(L, lib, "match", str_match, m);
        set_closure(L, lib, "gmatch", str_gmatch, m);
        set_closure(L, lib, "gsub", str_gsub, m);
        set_closure(L, lib, "rep", str_rep, m);
    }
    if (table_idx) {
        int lib = lua_absindex(L, table_idx);
        set_closure(L, lib, "concat", tab_concat, m);
        set_closure(L, lib, "insert", tab_insert, m);
        set_closure(L, lib, "remove", tab_remove, m);
        set_closure(L, lib, "move", tab_move, m);
        lua_pushlightuserdata(L, m);
        lua_getfield(L, lib, "sort");
        lua_pushcclosure(L, tab_sort, 2);
        lua_setfield(L, lib, "sort");
    }
}

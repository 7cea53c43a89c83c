/* Injected faults of the mocks (fault.h). */
#include "fault.h"

#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "random.h"

/* Quoted values in messages are cut to this many bytes. */
#define ECHO_MAX 40

typedef enum { V_INT, V_LONG, V_DOUBLE } value_type;

/* Every setting with the range it has wherever it is set: a latency of 2147483647.5 ms
 * held every request, and 1e300 became -2147483648, when one way of setting it had no
 * range of its own. The order is that of listings and JSON. */
typedef struct {
    unsigned kind;
    const char *key;
    double min, max;
    value_type type; /* V_INT and V_LONG count something: a whole number */
    size_t offset;
} setting;

#define AT(f) offsetof(jn_fault_settings, f)
static const setting settings[] = {
    {JN_FAULT_LATENCY_MS, "latency_ms", 0, JN_FAULT_LATENCY_MS_MAX, V_INT, AT(latency_ms)},
    {JN_FAULT_ERROR_RATE, "error_rate", 0, 1, V_DOUBLE, AT(error_rate)},
    {JN_FAULT_ERROR_STATUS, "error_status", JN_FAULT_STATUS_MIN, JN_FAULT_STATUS_MAX, V_INT,
     AT(error_status)},
    {JN_FAULT_MALFORMED_RATE, "malformed_rate", 0, 1, V_DOUBLE, AT(malformed_rate)},
    {JN_FAULT_DROP_RATE, "drop_rate", 0, 1, V_DOUBLE, AT(drop_rate)},
    {JN_FAULT_FAIL_NEXT, "fail_next", 0, JN_FAULT_FAIL_NEXT_MAX, V_LONG, AT(fail_next)},
};
#define NSETTINGS (sizeof settings / sizeof *settings)

jn_fault_settings jn_fault_none(void) {
    return (jn_fault_settings){.error_status = 503};
}

jn_fault_settings jn_fault_from_config(const jn_faults *cfg) {
    jn_fault_settings s = jn_fault_none();
    s.latency_ms = cfg->latency_ms;
    s.error_rate = cfg->error_rate;
    s.error_status = cfg->error_status;
    s.malformed_rate = cfg->malformed_rate;
    return s;
}

void jn_fault_init(jn_fault *f, const jn_fault_settings *set) {
    f->set = *set;
    f->rng = jn_random_seed();
}

/* ---- settings ---------------------------------------------------------------------- */

static double get(const jn_fault_settings *set, const setting *st) {
    const char *p = (const char *)set + st->offset;
    switch (st->type) {
    case V_INT:
        return *(const int *)p;
    case V_LONG:
        return (double)*(const long *)p;
    default:
        return *(const double *)p;
    }
}

static void put(jn_fault_settings *set, const setting *st, double v) {
    char *p = (char *)set + st->offset;
    switch (st->type) {
    case V_INT:
        *(int *)p = (int)v;
        break;
    case V_LONG:
        *(long *)p = (long)v;
        break;
    default:
        *(double *)p = v;
        break;
    }
}

/* The decoded JSON (or Lua) value at idx as a message shows it: 1e+300, "abc", null. */
static void describe_value(lua_State *L, int idx, jn_sb *out) {
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        jn_sb_puts(out, luaL_tolstring(L, idx, NULL)); /* Lua's %.14g for a float */
        lua_pop(L, 1);
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        jn_sb_putc(out, '"');
        jn_sb_echo(out, str, len, ECHO_MAX);
        jn_sb_putc(out, '"');
        break;
    }
    case LUA_TBOOLEAN:
        jn_sb_puts(out, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TLIGHTUSERDATA: /* how JSON null decodes */
        jn_sb_puts(out, "null");
        break;
    case LUA_TTABLE:
        jn_sb_puts(out, "an array or object");
        break;
    default:
        jn_sb_printf(out, "a %s", luaL_typename(L, idx));
        break;
    }
}

/* Sets st from the value at idx. Returns 0, or -1 with *err naming the key, its range
 * and the value. */
static int set_one(const setting *st, lua_State *L, int idx, const char *where,
                   jn_fault_settings *set, char **err) {
    double v = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : NAN;
    int whole = st->type != V_DOUBLE;
    if (!(v >= st->min && v <= st->max) || (whole && v != floor(v))) {
        jn_sb msg;
        jn_sb_init(&msg);
        jn_sb_printf(&msg, "%s%s must be %s from %.15g to %.15g, got ", where, st->key,
                     whole ? "an integer" : "a number", st->min, st->max);
        describe_value(L, idx, &msg);
        *err = jn_sb_steal(&msg);
        return -1;
    }
    put(set, st, v);
    return 0;
}

/* "faults: there is no setting "x"; the settings are a, b and c". */
static char *no_such_setting(const char *where, const char *key, unsigned kinds) {
    jn_sb msg;
    jn_sb_init(&msg);
    jn_sb_printf(&msg, "%sthere is no setting \"", where);
    jn_sb_echo(&msg, key, strlen(key), ECHO_MAX);
    jn_sb_puts(&msg, "\"; the settings are");
    size_t n = 0, total = 0;
    for (size_t i = 0; i < NSETTINGS; i++)
        total += (settings[i].kind & kinds) != 0;
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (!(settings[i].kind & kinds)) continue;
        n++;
        jn_sb_printf(&msg, "%s %s", n == 1 ? "" : n == total ? " and" : ",", settings[i].key);
    }
    return jn_sb_steal(&msg);
}

int jn_fault_read(lua_State *L, int idx, unsigned kinds, int strict, const char *where,
                  jn_fault_settings *set, char **err) {
    int top = lua_gettop(L);
    idx = lua_absindex(L, idx);
    if (!strict) {
        for (size_t i = 0; i < NSETTINGS; i++) {
            if (!(settings[i].kind & kinds)) continue;
            int given = lua_getfield(L, idx, settings[i].key) != LUA_TNIL;
            if (given && set_one(&settings[i], L, -1, where, set, err) != 0) {
                lua_settop(L, top);
                return -1;
            }
            lua_pop(L, 1);
        }
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        const setting *st = NULL;
        for (size_t i = 0; i < NSETTINGS && !st; i++)
            if ((settings[i].kind & kinds) && !strcmp(k, settings[i].key)) st = &settings[i];
        if (!st) {
            *err = no_such_setting(where, k, kinds);
            lua_settop(L, top);
            return -1;
        }
        if (set_one(st, L, -1, where, set, err) != 0) {
            lua_settop(L, top);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Appends the settings of kinds, each as <before>key<between>value, separated by sep. */
static void list(const jn_fault_settings *set, unsigned kinds, const char *before,
                 const char *between, char sep, jn_sb *out) {
    int first = 1;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *st = &settings[i];
        if (!(st->kind & kinds)) continue;
        if (!first) jn_sb_putc(out, sep);
        first = 0;
        jn_sb_printf(out, "%s%s%s", before, st->key, between);
        if (st->type == V_DOUBLE)
            jn_sb_printf(out, "%g", get(set, st));
        else
            jn_sb_int(out, (long long)get(set, st));
    }
}

void jn_fault_json(const jn_fault_settings *set, unsigned kinds, jn_sb *out) {
    jn_sb_putc(out, '{');
    list(set, kinds, "\"", "\":", ',', out);
    jn_sb_putc(out, '}');
}

void jn_fault_log(const char *who, const jn_fault_settings *set, unsigned kinds) {
    jn_sb line;
    jn_sb_init(&line);
    list(set, kinds, "", "=", ' ', &line);
    jn_log_info(who, "faults set: %s", line.data);
    jn_sb_free(&line);
}

/* ---- requests ---------------------------------------------------------------------- */

jn_fault_fate jn_fault_inject(jn_fault *f, jn_http_response *res) {
    const jn_fault_settings *s = &f->set;
    res->delay_ms = s->latency_ms;
    if (f->set.fail_next > 0) {
        f->set.fail_next--;
    } else if (s->drop_rate > 0 && jn_random_unit(&f->rng) < s->drop_rate) {
        res->drop = 1;
        return JN_FAULT_DROP;
    } else if (!(s->error_rate > 0 && jn_random_unit(&f->rng) < s->error_rate)) {
        return JN_FAULT_PASS;
    }
    int status = s->error_status ? s->error_status : 503;
    jn_http_respond_error(res, status, "injected fault");
    /* What a real service says when it is overloaded: come back in a second. */
    if (status == 429 || status == 503)
        snprintf(res->headers, sizeof res->headers, "Retry-After: 1\r\n");
    return JN_FAULT_FAIL;
}

void jn_fault_malform(jn_fault *f, jn_http_response *res) {
    if (res->status != 200 || !res->body || !(f->set.malformed_rate > 0) ||
        jn_random_unit(&f->rng) >= f->set.malformed_rate)
        return;
    jn_rbuf *cut = jn_rbuf_new(res->body->data, res->body->len / 2);
    jn_rbuf_unref(res->body);
    res->body = cut;
    res->etag[0] = '\0'; /* the tag named the whole body */
}

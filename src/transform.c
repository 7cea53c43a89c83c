/* A pipeline's transform (see transform.h): hook look-up, the ctx table, and the check of
 * a call's output before any of it leaves.
 *
 * Hooks are resolved when a version of the script is accepted and kept as registry
 * references, so a call costs one rawgeti, not a walk through M.on by name; a reload
 * swaps them only once the new version passed every check. */
#include "transform.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "join.h"
#include "json.h"
#include "record_view.h"

/* One record of the output being checked: where its text and keys are in t->text. */
typedef struct {
    size_t off, len;
    long id_off; /* -1: no id */
    uint32_t sinks;
    long key_off[JN_TRANSFORM_MAX_SINKS]; /* -1: no key */
    size_t key_len[JN_TRANSFORM_MAX_SINKS];
    int index;
} out_rec;

struct jn_transform {
    jn_script_host *host;
    jn_script *script;
    char *pipeline;
    int nstreams, ninputs, nsinks;
    char **inputs; /* streams, then tables */
    char **sinks;
    char **sink_keys;
    int *on_ref;      /* per input */
    int *restore_ref; /* per stream, LUA_NOREF when absent */
    int *revoke_ref;  /* per stream */
    int *key_ref;     /* per stream: dedupe_key.<stream>, LUA_NOREF when absent */
    int timer_ref;
    int views; /* the script takes record views (M.views = true): see record_view.h */
    int ctx_ref;
    int ctx_input; /* what ctx.input and ctx.partition hold now (-1: nil) */
    int64_t ctx_partition;
    /* The hook call in progress: whether it held its record, and for how long; and its
     * record's JSON as received, for ctx.json(). */
    int in_call, held;
    int cur_view; /* the record is a view: ctx.json() gives its text, kept in the registry */
    const char *cur_json;
    size_t cur_len;
    long hold_ms, default_hold_ms, hold_max;
    /* The join the script declared (M.join), done here without calls into it; its
     * inputs' indexes. NULL: none. */
    jn_join *join;
    int join_stream, join_table;
    jn_sb canon; /* a record made canonical for the join */
    jn_sb text;  /* the checked output's JSON, ids and keys */
    out_rec *recs;
    size_t nrecs, cap;
};

static char *dupstr(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

/* ---- hooks --------------------------------------------------------------------------- */

static int input_index(const jn_transform *t, const char *name) {
    for (int i = 0; i < t->ninputs; i++)
        if (!strcmp(t->inputs[i], name)) return i;
    return -1;
}

static void unref_all(jn_transform *t, lua_State *L) {
    for (int i = 0; i < t->ninputs; i++)
        luaL_unref(L, LUA_REGISTRYINDEX, t->on_ref[i]), t->on_ref[i] = LUA_NOREF;
    for (int i = 0; i < t->nstreams; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, t->restore_ref[i]), t->restore_ref[i] = LUA_NOREF;
        luaL_unref(L, LUA_REGISTRYINDEX, t->revoke_ref[i]), t->revoke_ref[i] = LUA_NOREF;
        luaL_unref(L, LUA_REGISTRYINDEX, t->key_ref[i]), t->key_ref[i] = LUA_NOREF;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->timer_ref), t->timer_ref = LUA_NOREF;
}

/* Checks the optional table M.<field> of per-stream functions (restore, revoke,
 * dedupe_key): every
 * key names a stream and holds a function. Leaves the table (or nil) on the stack. */
static int check_stream_table(jn_transform *t, lua_State *L, int mod, const char *field,
                              char **err) {
    int ty = jn_lua_rawgetfield(L, mod, field);
    if (ty == LUA_TNIL) return 0;
    if (ty != LUA_TTABLE) {
        *err = jn_errorf("pipeline %s: M.%s must be a table of functions by stream name, got a %s",
                         t->pipeline, field, lua_typename(L, ty));
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        int i = k ? input_index(t, k) : -1;
        if (i < 0 || i >= t->nstreams || !lua_isfunction(L, -1)) {
            *err = jn_errorf("pipeline %s: M.%s.%s must be a function named after one of the "
                             "pipeline's streams",
                             t->pipeline, field, k ? k : "(not a name)");
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* A string field of the M.join table at idx: a copy, NULL when absent and optional;
 * -1 with *err when it is not a non-empty string. */
static int join_name(jn_transform *t, lua_State *L, int idx, const char *k, int required,
                     char **out, char **err) {
    int ty = jn_lua_rawgetfield(L, idx, k);
    *out = NULL;
    if (ty == LUA_TNIL && !required) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
        *err = jn_errorf("pipeline %s: M.join.%s must be a non-empty string, got %s", t->pipeline,
                         k, ty == LUA_TSTRING ? "an empty one" : lua_typename(L, ty));
        lua_pop(L, 1);
        return -1;
    }
    *out = dupstr(lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
}

static int name_less(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads M.join (the table at idx) into *spec: NULL with 0 when the module has none. */
static int read_join(jn_transform *t, lua_State *L, int mod, jn_join_spec **spec, char **err) {
    *spec = NULL;
    int ty = jn_lua_rawgetfield(L, mod, "join");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TTABLE) {
        *err = jn_errorf("pipeline %s: M.join must be a table { stream, table, refs, into, "
                         "missing, stamp, fields }, got a %s",
                         t->pipeline, lua_typename(L, ty));
        lua_pop(L, 1);
        return -1;
    }
    int idx = lua_gettop(L);
    jn_join_spec *sp = calloc(1, sizeof *sp);
    if (!sp) abort();
    if (join_name(t, L, idx, "stream", 1, &sp->stream, err) ||
        join_name(t, L, idx, "table", 1, &sp->table, err) ||
        join_name(t, L, idx, "refs", 1, &sp->refs, err) ||
        join_name(t, L, idx, "into", 1, &sp->into, err) ||
        join_name(t, L, idx, "missing", 0, &sp->missing, err) ||
        join_name(t, L, idx, "stamp", 0, &sp->stamp, err))
        goto fail;
    int si = input_index(t, sp->stream), ti = input_index(t, sp->table);
    if (si < 0 || si >= t->nstreams) {
        *err = jn_errorf("pipeline %s: M.join.stream names %s, which is not one of the "
                         "pipeline's streams",
                         t->pipeline, sp->stream);
        goto fail;
    }
    if (ti < t->nstreams) {
        *err = jn_errorf("pipeline %s: M.join.table names %s, which is not one of the "
                         "pipeline's tables",
                         t->pipeline, sp->table);
        goto fail;
    }
    const char *out[] = {sp->into, sp->missing, sp->stamp};
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (out[a] && out[b] && !strcmp(out[a], out[b])) {
                *err = jn_errorf("pipeline %s: M.join sets field %s twice (into, missing and "
                                 "stamp must differ)",
                                 t->pipeline, out[a]);
                goto fail;
            }
    ty = jn_lua_rawgetfield(L, idx, "fields");
    if (ty == LUA_TTABLE) {
        int n = (int)lua_rawlen(L, -1);
        sp->fields = calloc((size_t)n + 1, sizeof *sp->fields);
        if (!sp->fields) abort();
        for (int i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
                *err = jn_errorf("pipeline %s: M.join.fields must be an array of field names",
                                 t->pipeline);
                lua_pop(L, 2);
                goto fail;
            }
            sp->fields[sp->nfields++] = dupstr(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        qsort(sp->fields, (size_t)sp->nfields, sizeof *sp->fields, name_less);
    } else if (ty != LUA_TNIL) {
        *err = jn_errorf("pipeline %s: M.join.fields must be an array of field names, got a %s",
                         t->pipeline, lua_typename(L, ty));
        lua_pop(L, 1);
        goto fail;
    }
    lua_pop(L, 2);
    *spec = sp;
    return 0;
fail:
    lua_settop(L, idx - 1);
    jn_join_spec_free(sp);
    return -1;
}

/* Whether input i is the join's (spec may be NULL). */
static int joined(const jn_transform *t, const jn_join_spec *spec, int i) {
    return spec && (!strcmp(t->inputs[i], spec->stream) || !strcmp(t->inputs[i], spec->table));
}

/* Accepts a version of the script when it has a hook for every input and nothing for
 * inputs the pipeline lacks; then takes its hooks. Module at the top of the stack. */
static int check_hooks(jn_script *s, void *ud, char **err) {
    (void)s;
    jn_transform *t = ud;
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L), mod = top;
    jn_join_spec *spec = NULL;
    if (read_join(t, L, mod, &spec, err) != 0) goto fail;
    if (spec && t->join && !jn_join_spec_same_shape(spec, jn_join_spec_of(t->join))) {
        *err = jn_errorf("pipeline %s: M.join changed its stream, table or refs; restart junction "
                         "to join differently (the state kept is that of the running join)",
                         t->pipeline);
        goto fail;
    }
    int on_ty = jn_lua_rawgetfield(L, mod, "on");
    if (on_ty == LUA_TNIL && spec) {
        lua_pop(L, 1);
        lua_newtable(L); /* the join may be all there is */
    } else if (on_ty != LUA_TTABLE) {
        *err = jn_errorf("pipeline %s: the transform must define M.on, a table with one function "
                         "per input (on.%s(record, ctx), ...), or M.join",
                         t->pipeline, t->inputs[0]);
        goto fail;
    }
    int on = lua_gettop(L);
    for (int i = 0; i < t->ninputs; i++) {
        int ty = jn_lua_rawgetfield(L, on, t->inputs[i]);
        lua_pop(L, 1);
        if (joined(t, spec, i) && ty != LUA_TNIL) {
            *err = jn_errorf("pipeline %s: M.join takes %s %s, and on.%s is defined too; keep one",
                             t->pipeline, i < t->nstreams ? "stream" : "table", t->inputs[i],
                             t->inputs[i]);
            goto fail;
        }
        if (!joined(t, spec, i) && ty != LUA_TFUNCTION) {
            *err = jn_errorf("pipeline %s reads %s %s, but the transform has no on.%s(record, ctx)",
                             t->pipeline, i < t->nstreams ? "stream" : "table", t->inputs[i],
                             t->inputs[i]);
            goto fail;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, on)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a name)";
        if (lua_type(L, -2) != LUA_TSTRING || input_index(t, k) < 0) {
            jn_sb names;
            jn_sb_init(&names);
            for (int i = 0; i < t->ninputs; i++)
                jn_sb_printf(&names, "%s%s", i ? ", " : "", t->inputs[i]);
            *err = jn_errorf("pipeline %s: the transform defines on.%s, but the pipeline has no "
                             "input %s (its inputs: %s)",
                             t->pipeline, k, k, names.data);
            jn_sb_free(&names);
            goto fail;
        }
        lua_pop(L, 1);
    }
    int views = jn_lua_rawgetfield(L, mod, "views");
    lua_pop(L, 1);
    if (views != LUA_TNIL && views != LUA_TBOOLEAN) {
        *err = jn_errorf("pipeline %s: M.views must be true or false, got a %s", t->pipeline,
                         lua_typename(L, views));
        goto fail;
    }
    jn_lua_rawgetfield(L, mod, "views");
    views = lua_toboolean(L, -1);
    lua_pop(L, 1);
    int ty = jn_lua_rawgetfield(L, mod, "timer");
    lua_pop(L, 1);
    if (ty != LUA_TNIL && ty != LUA_TFUNCTION) {
        *err = jn_errorf("pipeline %s: M.timer must be a function, got a %s", t->pipeline,
                         lua_typename(L, ty));
        goto fail;
    }
    if (check_stream_table(t, L, mod, "restore", err) != 0) goto fail;
    int restore = lua_gettop(L);
    if (check_stream_table(t, L, mod, "revoke", err) != 0) goto fail;
    int revoke = lua_gettop(L);
    if (check_stream_table(t, L, mod, "dedupe_key", err) != 0) goto fail;
    int keys = lua_gettop(L);
    for (int i = 0; spec && i < t->nstreams; i++) {
        if (!joined(t, spec, i)) continue;
        int r = lua_istable(L, restore) && jn_lua_rawgetfield(L, restore, t->inputs[i]) != LUA_TNIL;
        if (lua_istable(L, restore)) lua_pop(L, 1);
        int v = lua_istable(L, revoke) && jn_lua_rawgetfield(L, revoke, t->inputs[i]) != LUA_TNIL;
        if (lua_istable(L, revoke)) lua_pop(L, 1);
        if (r || v) {
            *err = jn_errorf("pipeline %s: M.join keeps the state of stream %s; drop M.%s.%s",
                             t->pipeline, t->inputs[i], r ? "restore" : "revoke", t->inputs[i]);
            goto fail;
        }
    }

    /* Accepted: take the new hooks, and the join. */
    unref_all(t, L);
    t->views = views;
    if (!spec) {
        jn_join_free(t->join); /* the script's hooks take over, with a state of their own */
        t->join = NULL;
    } else if (t->join) {
        jn_join_respec(t->join, spec);
    } else {
        t->join = jn_join_new(spec, t->default_hold_ms, t->hold_max);
        t->join_stream = input_index(t, spec->stream);
        t->join_table = input_index(t, spec->table);
    }
    spec = NULL;
    for (int i = 0; i < t->ninputs; i++) {
        if (joined(t, t->join ? jn_join_spec_of(t->join) : NULL, i)) continue;
        jn_lua_rawgetfield(L, on, t->inputs[i]);
        t->on_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    for (int i = 0; i < t->nstreams; i++) {
        if (lua_istable(L, restore) && jn_lua_rawgetfield(L, restore, t->inputs[i]) != LUA_TNIL)
            t->restore_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (lua_istable(L, restore))
            lua_pop(L, 1);
        if (lua_istable(L, revoke) && jn_lua_rawgetfield(L, revoke, t->inputs[i]) != LUA_TNIL)
            t->revoke_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (lua_istable(L, revoke))
            lua_pop(L, 1);
        if (lua_istable(L, keys) && jn_lua_rawgetfield(L, keys, t->inputs[i]) != LUA_TNIL)
            t->key_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (lua_istable(L, keys))
            lua_pop(L, 1);
    }
    if (jn_lua_rawgetfield(L, mod, "timer") == LUA_TFUNCTION)
        t->timer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    lua_settop(L, top);
    return 0;
fail:
    jn_join_spec_free(spec);
    lua_settop(L, top);
    return -1;
}

/* ctx.hold([ms]): keeps the record of this call back until a later record with its id
 * answers it, at most ms (the pipeline's hold_ms by default). Outside a stream or table
 * hook it does nothing and returns false. */
static int l_ctx_hold(lua_State *L) {
    jn_transform *t = lua_touserdata(L, lua_upvalueindex(1));
    if (!t->in_call) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_Integer ms = luaL_optinteger(L, 1, t->default_hold_ms);
    t->held = 1;
    t->hold_ms = ms < 0 ? 0 : (long)ms;
    lua_pushboolean(L, 1);
    return 1;
}

/* ctx.json(): the JSON text of the record of this call, as it came (a string), or nil
 * outside a stream or table hook. A script that keeps records around keeps this text
 * rather than the decoded table: a fraction of the memory, and nothing for the
 * collector to walk (scripts/merge.lua does so for its customers). Made only when asked
 * for, so hooks that do not use it pay nothing. */
static int l_ctx_json(lua_State *L) {
    jn_transform *t = lua_touserdata(L, lua_upvalueindex(1));
    if (!t->cur_json) {
        lua_pushnil(L);
        return 1;
    }
    if (t->cur_view)
        lua_rawgetp(L, LUA_REGISTRYINDEX, &t->cur_view);
    else
        lua_pushlstring(L, t->cur_json, t->cur_len);
    return 1;
}

static char **dup_names(const char *const *names, int n) {
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) abort();
    for (int i = 0; i < n; i++)
        v[i] = names && names[i] ? dupstr(names[i]) : NULL;
    return v;
}

static int *new_refs(int n) {
    int *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v) abort();
    for (int i = 0; i < n; i++)
        v[i] = LUA_NOREF;
    return v;
}

jn_transform *jn_transform_new(jn_script_host *h, const jn_transform_opts *o, char **err) {
    if (o->nsinks > JN_TRANSFORM_MAX_SINKS) {
        *err = jn_errorf("pipeline %s: at most %d sinks", o->pipeline, JN_TRANSFORM_MAX_SINKS);
        return NULL;
    }
    jn_transform *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->host = h;
    t->pipeline = dupstr(o->pipeline);
    t->nstreams = o->nstreams;
    t->ninputs = o->nstreams + o->ntables;
    t->inputs = calloc((size_t)t->ninputs + 1, sizeof *t->inputs);
    if (!t->inputs) abort();
    for (int i = 0; i < o->nstreams; i++)
        t->inputs[i] = dupstr(o->streams[i]);
    for (int i = 0; i < o->ntables; i++)
        t->inputs[o->nstreams + i] = dupstr(o->tables[i]);
    t->nsinks = o->nsinks;
    t->sinks = dup_names(o->sinks, o->nsinks);
    t->sink_keys = dup_names(o->sink_keys, o->nsinks);
    t->on_ref = new_refs(t->ninputs);
    t->restore_ref = new_refs(t->nstreams);
    t->revoke_ref = new_refs(t->nstreams);
    t->key_ref = new_refs(t->nstreams);
    t->timer_ref = LUA_NOREF;
    t->ctx_input = -1;
    t->ctx_partition = -1;
    t->default_hold_ms = o->hold_ms;
    t->hold_max = o->hold_max;
    jn_sb_init(&t->text);
    jn_sb_init(&t->canon);

    lua_State *L = jn_script_host_lua(h);
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, o->hold_ms);
    lua_setfield(L, -2, "hold_ms");
    lua_pushinteger(L, o->hold_max);
    lua_setfield(L, -2, "hold_max");
    lua_pushstring(L, o->pipeline);
    lua_setfield(L, -2, "pipeline");
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, l_ctx_hold, 1);
    lua_setfield(L, -2, "hold");
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, l_ctx_json, 1);
    lua_setfield(L, -2, "json");
    t->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    char name[160];
    snprintf(name, sizeof name, "%s", o->pipeline);
    t->script = jn_script_add(h, name, o->path, check_hooks, t, err);
    if (!t->script) {
        jn_transform_free(t);
        return NULL;
    }
    return t;
}

void jn_transform_free(jn_transform *t) {
    if (!t) return;
    if (t->script) jn_script_remove(t->script); /* no reload reaches a freed check */
    lua_State *L = jn_script_host_lua(t->host);
    unref_all(t, L);
    luaL_unref(L, LUA_REGISTRYINDEX, t->ctx_ref);
    for (int i = 0; i < t->ninputs; i++)
        free(t->inputs[i]);
    for (int i = 0; i < t->nsinks; i++)
        free(t->sinks[i]), free(t->sink_keys[i]);
    free(t->inputs);
    free(t->sinks);
    free(t->sink_keys);
    free(t->on_ref);
    free(t->restore_ref);
    free(t->revoke_ref);
    free(t->key_ref);
    free(t->pipeline);
    jn_join_free(t->join);
    jn_sb_free(&t->canon);
    jn_sb_free(&t->text);
    free(t->recs);
    free(t);
}

/* ---- calls --------------------------------------------------------------------------- */

/* Whether JSON text is an object: a decoded array is a Lua table too. */
static int is_object(const char *json, size_t len) {
    size_t i = 0;
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        i++;
    return i < len && json[i] == '{';
}

/* Pushes ctx with the fields of this call. Raw sets: the script may have given ctx a
 * metatable. input and partition are set only when they change (most calls are the same
 * partition's in a row, and each set costs a string look-up): a script that writes
 * them itself only confuses itself. */
static void push_ctx(jn_transform *t, lua_State *L, const jn_transform_call_info *info) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ctx_ref);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    jn_lua_rawsetfield(L, -2, "now");
    int input = info ? info->input : -1;
    int64_t partition = info && info->input < t->nstreams ? info->partition : -1;
    if (input != t->ctx_input) {
        if (input >= 0)
            lua_pushstring(L, t->inputs[input]);
        else
            lua_pushnil(L);
        jn_lua_rawsetfield(L, -2, "input");
        t->ctx_input = input;
    }
    if (partition != t->ctx_partition) {
        if (partition >= 0)
            lua_pushinteger(L, (lua_Integer)partition);
        else
            lua_pushnil(L);
        jn_lua_rawsetfield(L, -2, "partition");
        t->ctx_partition = partition;
    }
}

/* The value of field k of the table at idx as text into t->text; returns its offset, or
 * -1 when it is absent or neither a string nor a number. */
static long field_text(jn_transform *t, lua_State *L, int idx, const char *k, size_t *len) {
    if (lua_type(L, idx) == LUA_TUSERDATA) {
        /* A view's field as its text: a canonical string holds no escapes, a canonical
         * number is an integer's digits. Anything else has no text, as below. */
        const char *val;
        size_t vlen;
        int raw = jn_view_raw(L, idx, k, &val, &vlen);
        if (raw == 0) return -1;
        if (raw > 0) {
            if (*val == '"') {
                val++;
                vlen -= 2;
                if (vlen == 0) return -1;
            } else if (!(*val == '-' || (*val >= '0' && *val <= '9'))) {
                return -1;
            }
            long off = (long)t->text.len;
            jn_sb_append(&t->text, val, vlen);
            *len = vlen;
            jn_sb_append(&t->text, "", 1);
            return off;
        }
    }
    int ty =
        lua_type(L, idx) == LUA_TUSERDATA ? jn_view_get(L, idx, k) : jn_lua_rawgetfield(L, idx, k);
    long off = (long)t->text.len;
    if (ty == LUA_TNUMBER && lua_isinteger(L, -1)) {
        char buf[JN_INT_CHARS];
        size_t n = jn_fmt_int(buf, (long long)lua_tointeger(L, -1)); /* no printf per record */
        jn_sb_append(&t->text, buf, n);
    } else if (ty == LUA_TNUMBER) {
        jn_sb_printf(&t->text, "%.0f", lua_tonumber(L, -1));
    } else if (ty == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        jn_sb_append(&t->text, lua_tostring(L, -1), lua_rawlen(L, -1));
    } else {
        off = -1;
    }
    lua_pop(L, 1);
    if (off >= 0) {
        *len = t->text.len - (size_t)off;
        jn_sb_append(&t->text, "", 1); /* NUL, so the id reads as a C string */
    }
    return off;
}

/* Checks and encodes the record at the top of the stack for the sinks in mask. */
static char *add_record(jn_transform *t, lua_State *L, uint32_t mask, int index,
                        const char *where) {
    int rec = lua_gettop(L);
    if (!lua_istable(L, rec) && !jn_view_test(L, rec))
        return jn_errorf("record %d%s of the result is a %s, not a table", index, where,
                         luaL_typename(L, rec));
    if (t->nrecs == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->recs = realloc(t->recs, t->cap * sizeof *t->recs);
        if (!t->recs) abort();
    }
    out_rec *r = &t->recs[t->nrecs];
    const char *eerr = NULL;
    r->off = t->text.len;
    if (jn_json_encode(L, rec, NULL, &t->text, &eerr) != 0)
        return jn_errorf("record %d%s of the result cannot be encoded as JSON: %s", index, where,
                         eerr);
    r->len = t->text.len - r->off;
    jn_sb_append(&t->text, "", 1);
    size_t idlen;
    r->id_off = field_text(t, L, rec, "id", &idlen);
    if (r->id_off >= 0 && idlen >= 64) r->id_off = -1; /* too long to be waited for */
    r->sinks = mask;
    for (int s = 0; s < t->nsinks; s++) {
        r->key_off[s] = -1;
        if ((mask >> s & 1) && t->sink_keys[s])
            r->key_off[s] = field_text(t, L, rec, t->sink_keys[s], &r->key_len[s]);
    }
    r->index = index;
    t->nrecs++;
    return NULL;
}

static int sink_index(const jn_transform *t, const char *name) {
    for (int i = 0; i < t->nsinks; i++)
        if (!strcmp(t->sinks[i], name)) return i;
    return -1;
}

/* Checks the hook's result at the top of the stack and encodes every record; nothing is
 * emitted unless all of it is good. Pops the result. */
static char *check_output(jn_transform *t, lua_State *L, const char *kind, const char *name) {
    char hook[96]; /* for messages: formatted only when one is needed */
#define HOOK_NAME() (snprintf(hook, sizeof hook, "%s%s", kind, name), hook)
    int res = lua_gettop(L);
    t->text.len = 0;
    t->nrecs = 0;
    char *err = NULL;
    if (lua_isnil(L, res)) goto done;
    if (!lua_istable(L, res)) {
        err = jn_errorf("%s returned a %s; return nil or a table of records", HOOK_NAME(),
                        luaL_typename(L, res));
        goto done;
    }
    uint32_t all = t->nsinks >= 32 ? 0xffffffffu : (1u << t->nsinks) - 1;
    lua_Integer n = (lua_Integer)lua_rawlen(L, res);
    for (lua_Integer i = 1; i <= n && !err; i++) {
        lua_rawgeti(L, res, i);
        err = add_record(t, L, all, (int)i, "");
        lua_pop(L, 1);
    }
    /* Records named for one sink: string keys. lua_next from the array's last index
     * goes on to whatever else the table holds, so a plain array (the common result)
     * costs one step; anything found makes the whole table walked. */
    if (n > 0)
        lua_pushinteger(L, n);
    else
        lua_pushnil(L);
    if (!err && lua_next(L, res)) {
        lua_pop(L, 2);
        lua_pushnil(L);
        while (!err && lua_next(L, res)) {
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= n) {
                lua_pop(L, 1);
                continue;
            }
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            int s = k ? sink_index(t, k) : -1;
            if (s < 0) {
                jn_sb names;
                jn_sb_init(&names);
                for (int i = 0; i < t->nsinks; i++)
                    jn_sb_printf(&names, "%s%s", i ? ", " : "", t->sinks[i]);
                err = k ? jn_errorf("%s returned records for sink %s, which pipeline %s does not "
                                    "have (its sinks: %s)",
                                    HOOK_NAME(), k, t->pipeline, names.data)
                        : jn_errorf("%s returned a table with a key that is neither an array "
                                    "index nor a sink name",
                                    HOOK_NAME());
                jn_sb_free(&names);
                lua_pop(L, 2);
                break;
            }
            if (!lua_istable(L, -1)) {
                err = jn_errorf("%s returned a %s for sink %s; give an array of records",
                                HOOK_NAME(), luaL_typename(L, -1), k);
                lua_pop(L, 2);
                break;
            }
            int arr = lua_gettop(L);
            lua_Integer m = (lua_Integer)lua_rawlen(L, arr);
            char where[96];
            snprintf(where, sizeof where, " for sink %s", k);
            for (lua_Integer i = 1; i <= m && !err; i++) {
                lua_rawgeti(L, arr, i);
                err = add_record(t, L, 1u << s, (int)i, where);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            if (err) lua_pop(L, 1);
        }
    }
done:
    lua_settop(L, res - 1);
    return err;
}
#undef HOOK_NAME

static void emit_all(jn_transform *t, const jn_transform_cbs *cbs, void *ud) {
    for (size_t i = 0; i < t->nrecs; i++) {
        const out_rec *r = &t->recs[i];
        jn_transform_record out;
        out.json = t->text.data + r->off;
        out.len = r->len;
        out.id = r->id_off >= 0 ? t->text.data + r->id_off : NULL;
        out.sinks = r->sinks;
        for (int s = 0; s < t->nsinks; s++) {
            out.keys[s] = r->key_off[s] >= 0 ? t->text.data + r->key_off[s] : NULL;
            out.key_lens[s] = r->key_off[s] >= 0 ? r->key_len[s] : 0;
        }
        out.index = r->index;
        cbs->emit(ud, &out);
    }
}

static char *first_line(char *err, const char *prefix) {
    char *nl = strchr(err, '\n');
    if (nl) *nl = '\0';
    char *r = jn_errorf("%s%s", prefix, err);
    free(err);
    return r;
}

/* ---- the join ------------------------------------------------------------------------ */

/* json as a canonical object for the join: itself when it is one, else rebuilt. NULL with
 * *reason when it is not a JSON object. */
static const char *canonical_object(jn_transform *t, const char *json, size_t len, int canonical,
                                    size_t *clen, char **reason) {
    *clen = len;
    if (canonical) return json;
    jn_json_member small[32];
    int sorted;
    int n = jn_json_object_members(json, len, small, 32, &sorted);
    if (n > 0 && sorted) return json;
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L);
    char jerr[160];
    const char *eerr = NULL;
    if (jn_json_decode(L, json, len, jerr, sizeof jerr) != 0) {
        *reason = jn_errorf("value is not JSON: %s", jerr);
        return NULL;
    }
    t->canon.len = 0;
    int ok = lua_istable(L, -1) && is_object(json, len) &&
             jn_json_encode(L, -1, NULL, &t->canon, &eerr) == 0 && t->canon.data[0] == '{';
    lua_settop(L, top);
    if (!ok) {
        *reason = jn_errorf("value is not a JSON object with members");
        return NULL;
    }
    *clen = t->canon.len;
    return t->canon.data;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hands the join's last output to the owner. */
static void emit_joined(jn_transform *t, const jn_transform_cbs *cbs, void *ud) {
    size_t n;
    const jn_join_out *o = jn_join_output(t->join, &n);
    const char *text = jn_join_text(t->join);
    uint32_t all = t->nsinks >= 32 ? 0xffffffffu : (1u << t->nsinks) - 1;
    for (size_t i = 0; i < n; i++) {
        jn_transform_record out;
        char id[64];
        out.json = text + o[i].off;
        out.len = o[i].len;
        out.id = NULL;
        if (o[i].id_off >= 0) {
            memcpy(id, text + o[i].id_off, o[i].id_len);
            id[o[i].id_len] = '\0';
            out.id = id;
        }
        out.sinks = all;
        for (int s = 0; s < t->nsinks; s++) {
            out.keys[s] = NULL;
            out.key_lens[s] = 0;
            if (!t->sink_keys[s]) continue;
            const char *v = jn_json_find_member(out.json, out.json + out.len, t->sink_keys[s]);
            if (!v || *v == '{' || *v == '[') continue;
            const char *e = jn_json_skip_value(v, out.json + out.len);
            if (*v == '"') v++, e--;
            if (e > v) out.keys[s] = v, out.key_lens[s] = (size_t)(e - v);
        }
        out.index = (int)i + 1;
        cbs->emit(ud, &out);
    }
}

static int join_call(jn_transform *t, const jn_transform_call_info *info, const char *json,
                     size_t len, const jn_transform_cbs *cbs, void *ud, int *held, long *hold_ms,
                     char **reason) {
    size_t clen;
    const char *c = canonical_object(t, json, len, info->canonical, &clen, reason);
    if (!c) return -1;
    int rc = info->input == t->join_stream
                 ? jn_join_stream(t->join, c, clen, info->partition, now_s(), held, reason)
                 : jn_join_table(t->join, c, clen, now_s(), reason);
    /* The join read the id with the record's members; nothing was emitted yet. */
    char id[64];
    jn_join_last_id(t->join, id, sizeof id);
    cbs->begin(ud, id);
    if (rc != 0) return -1;
    *hold_ms = *held ? t->default_hold_ms : 0;
    emit_joined(t, cbs, ud);
    return 0;
}

int jn_transform_call(jn_transform *t, const jn_transform_call_info *info, const char *json,
                      size_t len, const jn_transform_cbs *cbs, void *ud, int *held, long *hold_ms,
                      char **reason) {
    *held = 0;
    *hold_ms = 0;
    if (t->join && (info->input == t->join_stream || info->input == t->join_table))
        return join_call(t, info, json, len, cbs, ud, held, hold_ms, reason);
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->on_ref[info->input]);
    char jerr[160];
    t->cur_view = 0;
    if (t->views && jn_view_push_checked(L, json, len, info->canonical) == 0) {
        /* A canonical object: nothing more to check. */
        t->cur_view = 1;
        jn_view_push_text(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &t->cur_view);
    } else if (jn_json_decode(L, json, len, jerr, sizeof jerr) != 0) {
        lua_settop(L, top);
        *reason = jn_errorf("value is not JSON: %s", jerr);
        return -1;
    } else if (!lua_istable(L, -1) || !is_object(json, len)) {
        lua_settop(L, top);
        *reason = jn_errorf("value is not a JSON object");
        return -1;
    }
    char id[64] = "";
    size_t idlen;
    size_t mark = t->text.len = 0;
    long off = field_text(t, L, -1, "id", &idlen);
    if (off >= 0 && idlen < sizeof id) memcpy(id, t->text.data + off, idlen + 1);
    t->text.len = mark;
    cbs->begin(ud, id);
    push_ctx(t, L, info);
    t->in_call = 1;
    t->held = 0;
    t->cur_json = json;
    t->cur_len = len;
    char *err = NULL;
    int rc = jn_script_pcall(t->script, 2, 1, &err);
    t->in_call = 0;
    t->cur_json = NULL;

    if (rc != 0) {
        lua_settop(L, top);
        char prefix[120];
        snprintf(prefix, sizeof prefix, "on.%s: ", t->inputs[info->input]);
        *reason = first_line(err, prefix);
        return -1;
    }
    char *bad = check_output(t, L, "on.", t->inputs[info->input]);
    lua_settop(L, top);
    if (bad) {
        *reason = bad;
        return -1;
    }
    *held = t->held;
    *hold_ms = t->hold_ms;
    emit_all(t, cbs, ud);
    return 0;
}

int jn_transform_timer(jn_transform *t, const jn_transform_cbs *cbs, void *ud, char **reason) {
    if (t->join) {
        jn_join_expire(t->join, now_s());
        emit_joined(t, cbs, ud);
    }
    if (t->timer_ref == LUA_NOREF) return 0;
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->timer_ref);
    push_ctx(t, L, NULL);
    char *err = NULL;
    if (jn_script_pcall(t->script, 1, 1, &err) != 0) {
        lua_settop(L, top);
        *reason = first_line(err, "timer: ");
        return -1;
    }
    char *bad = check_output(t, L, "timer", "");
    lua_settop(L, top);
    if (bad) {
        *reason = bad;
        return -1;
    }
    emit_all(t, cbs, ud);
    return 0;
}

int jn_transform_restores(jn_transform *t, int stream) {
    return t->restore_ref[stream] != LUA_NOREF || (t->join && stream == t->join_stream);
}

/* Calls the hook at ref on the record json decodes to, with ctx (and ctx.json()), leaving
 * nresults results on the stack. Returns the stack's top before the call, or -1 with
 * *reason (the stack as it was): `bad` when json is not an object, else the hook's error
 * after "<hook>.<input>: ". */
static int call_on_record(jn_transform *t, int ref, const jn_transform_call_info *info,
                          const char *json, size_t len, int nresults, const char *hook,
                          const char *bad, char **reason) {
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    char jerr[160];
    t->cur_view = 0;
    if (t->views && jn_view_push_checked(L, json, len, info->canonical) == 0) {
        t->cur_view = 1;
        jn_view_push_text(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &t->cur_view);
    } else if (!is_object(json, len) || jn_json_decode(L, json, len, jerr, sizeof jerr) != 0) {
        lua_settop(L, top);
        *reason = jn_errorf("%s", bad);
        return -1;
    }
    push_ctx(t, L, info);
    char *err = NULL;
    t->cur_json = json;
    t->cur_len = len;
    int rc = jn_script_pcall(t->script, 2, nresults, &err);
    t->cur_json = NULL;
    if (rc != 0) {
        lua_settop(L, top);
        char prefix[120];
        snprintf(prefix, sizeof prefix, "%s.%s: ", hook, t->inputs[info->input]);
        *reason = first_line(err, prefix);
        return -1;
    }
    return top;
}

int jn_transform_restore(jn_transform *t, const jn_transform_call_info *info, const char *json,
                         size_t len, char **reason) {
    if (t->join && info->input == t->join_stream) {
        size_t clen;
        const char *c = canonical_object(t, json, len, info->canonical, &clen, reason);
        if (!c) {
            char *r = *reason;
            *reason = jn_errorf("changelog record: %s", r);
            free(r);
            return -1;
        }
        return jn_join_restore(t->join, c, clen, info->partition, reason);
    }
    if (t->restore_ref[info->input] == LUA_NOREF) return 0;
    int top = call_on_record(t, t->restore_ref[info->input], info, json, len, 0, "restore",
                             "changelog record is not a JSON object", reason);
    if (top < 0) return -1;
    lua_settop(jn_script_host_lua(t->host), top);
    return 0;
}

int jn_transform_keeps_partitions(jn_transform *t, int stream) {
    return t->join && stream == t->join_stream;
}

int jn_transform_keep_partitions(jn_transform *t, int stream, const int32_t *parts, int n) {
    if (!jn_transform_keeps_partitions(t, stream)) return -1;
    return jn_join_keep_partitions(t->join, parts, n);
}

int jn_transform_revoke(jn_transform *t, int stream, const int32_t *parts, int n, char **reason) {
    if (t->join && stream == t->join_stream) jn_join_forget(t->join);
    if (t->revoke_ref[stream] == LUA_NOREF) return 0;
    lua_State *L = jn_script_host_lua(t->host);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->revoke_ref[stream]);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, parts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    jn_transform_call_info info = {.input = stream, .partition = -1};
    push_ctx(t, L, &info);
    char *err = NULL;
    int rc = jn_script_pcall(t->script, 2, 0, &err);
    lua_settop(L, top);
    if (rc != 0) {
        char prefix[120];
        snprintf(prefix, sizeof prefix, "revoke.%s: ", t->inputs[stream]);
        *reason = first_line(err, prefix);
        return -1;
    }
    return 0;
}

int jn_transform_keys(jn_transform *t, int stream) {
    return t->key_ref[stream] != LUA_NOREF;
}

int jn_transform_dedupe_key(jn_transform *t, const jn_transform_call_info *info, const char *json,
                            size_t len, unsigned char hash[32], char **reason) {
    if (t->key_ref[info->input] == LUA_NOREF) return 0;
    lua_State *L = jn_script_host_lua(t->host);
    int top = call_on_record(t, t->key_ref[info->input], info, json, len, 1, "dedupe_key",
                             "value is not a JSON object", reason);
    if (top < 0) return -1;
    char prefix[120];
    snprintf(prefix, sizeof prefix, "dedupe_key.%s: ", t->inputs[info->input]);
    int ty = lua_type(L, -1), rc = 1;
    if (ty == LUA_TNIL) {
        rc = 0;
    } else if (ty == LUA_TSTRING || ty == LUA_TNUMBER) {
        /* Hashed under a domain of its own, so a key can never name the mark of some
         * record's content; the hash also bounds the mark's length whatever the key's. */
        size_t klen;
        const char *k = lua_tolstring(L, -1, &klen);
        t->text.len = 0;
        jn_sb_append(&t->text, "dedupe_key\n", 11);
        jn_sb_append(&t->text, k, klen);
        jn_sha256(t->text.data, t->text.len, hash);
    } else {
        *reason = jn_errorf("%sreturned a %s; return a string, a number or nil (the content "
                            "decides)",
                            prefix, lua_typename(L, ty));
        rc = -1;
    }
    lua_settop(L, top);
    return rc;
}

int jn_transform_join_size(const jn_transform *t, int64_t *records, int64_t *bytes) {
    if (!t->join) return -1;
    jn_join_stats st;
    jn_join_get_stats(t->join, &st);
    *records = (int64_t)st.records;
    *bytes = (int64_t)st.bytes;
    return 0;
}

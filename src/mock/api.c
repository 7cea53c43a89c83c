/* The mock APIs, one per entry of the config's `apis`. GET answers come from the
 * collection's caches, or are built page by page for an API that pages; writes go through
 * the script's validate() so the data keeps the shape the script defines. An API with a
 * token answers nothing but 401 to a request without it. */
#include "api.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "http_auth.h"
#include "http_server.h"
#include "collection.h"
#include "fault.h"
#include "json.h"
#include "log.h"
#include "paging.h"
#include "router.h"

#define MAX_FIELDS 32
/* What a script's M.resource and M.singular may hold, as the config's keys. */
#define IDENT_MAX        64
#define DEFAULT_COUNT    1000
#define MAX_COUNT        10000000
#define DEFAULT_SINGULAR "Record"
/* The fault settings of a mock API: all but drop_rate. A script's M.faults and the
 * config set the ones that last (fail_next is a run time setting only). */
#define API_FAULTS                                                                                 \
    (JN_FAULT_LATENCY_MS | JN_FAULT_ERROR_RATE | JN_FAULT_ERROR_STATUS | JN_FAULT_MALFORMED_RATE | \
     JN_FAULT_FAIL_NEXT)
#define ECHO_MAX 40 /* bytes of an id a message quotes */

typedef struct service {
    jn_api *api;
    const char *name;
    jn_api_config cfg; /* a copy; its strings are the config's, which outlives the API */
    /* Fixed at the first load: the route patterns, and with them the metrics' labels,
     * point into these. */
    char *resource, *pattern_collection, *pattern_item;
    char singular[IDENT_MAX + 1]; /* "<singular> not found" */
    char token_key[96];           /* the key the 401 names: apis.<name>.token */
    jn_script *script;
    jn_collection *data;
    char *fields[MAX_FIELDS + 1];
    int int_ids;
    jn_fault fault;
    jn_http_server *http;
    jn_route routes[2];
    jn_http_routes table;
    char serves[160]; /* "this API serves /<resource> and /<resource>/:id" */
} service;

struct jn_api {
    uv_loop_t *loop;
    jn_script_host *scripts;
    service *svc;
    int n;
    int running;
    void (*done)(void *);
    void *done_arg;
};

enum { R_COLLECTION, R_ITEM };

/* ---- helpers ----------------------------------------------------------------------- */

/* Encodes the table at the top of the stack with the script's field order. */
static int encode_record(service *s, lua_State *L, jn_sb *out, const char **err) {
    jn_sb_init(out);
    int rc = jn_json_encode(L, -1, (const char *const *)s->fields, out, err);
    if (rc) jn_sb_free(out);
    return rc;
}

/* Reads record.id at the top of the stack as the collection key: an integer id in plain
 * decimal, the one spelling a path can reach it by (collection.h). */
static int record_id(service *s, lua_State *L, int int_ids, char *out, size_t cap) {
    (void)s;
    jn_lua_rawgetfield(L, -1, "id");
    int ok = 0;
    if (int_ids && lua_type(L, -1) == LUA_TNUMBER) {
        /* A float only when it holds an integer exactly; Lua checks the range, where a C
         * cast of 1e300 would be undefined. */
        int exact;
        lua_Integer v = lua_tointegerx(L, -1, &exact);
        if (exact && v > 0) {
            snprintf(out, cap, "%lld", (long long)v);
            ok = 1;
        }
    } else if (!int_ids && lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0 &&
               lua_rawlen(L, -1) < cap) {
        snprintf(out, cap, "%s", lua_tostring(L, -1));
        ok = 1;
    }
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

/* What validate() can come to besides 0: the script rejected the record, its reason
 * written for whoever sent it; or the call itself failed, an error with the script's
 * paths and a traceback, written for whoever runs the script. */
#define REJECTED (-1)
#define FAILED   (-2)

/* Calls validate(record) of the module at stack index mod (a candidate version, read
 * inside its protected check), or of the current version when mod is 0, on the record
 * at the top, replacing it with the validated record. Returns 0, or REJECTED or FAILED
 * with *err (malloc'd). */
static int validate(service *s, lua_State *L, int mod, char **err) {
    if (mod) {
        lua_getfield(L, mod, "validate");
    } else if (jn_script_push_function(s->script, "validate", err) != 0) {
        lua_pop(L, 1);
        return FAILED;
    }
    lua_insert(L, -2);
    if (jn_script_pcall(s->script, 1, 2, err) != 0) return FAILED;
    if (!lua_istable(L, -2)) {
        const char *why = lua_tostring(L, -1);
        *err = jn_errorf("%s", why ? why : "validate() rejected the record without saying why");
        lua_pop(L, 2);
        return REJECTED;
    }
    lua_pop(L, 1);
    return 0;
}

/* ---- loading (the script check) ---------------------------------------------------- */

/* What the script may say of itself and the config may override: the path it serves,
 * the noun of its 404 and how many records to generate. */
typedef struct {
    char resource[IDENT_MAX + 1];
    char singular[IDENT_MAX + 1];
    int count;
} identity;

/* Reads M.resource, M.singular and M.count of the module at mod where the config left
 * them to the script. The path is fixed once the API serves it: routes and metrics
 * labels are built on it. Returns 0, or -1 with *err (malloc'd). */
static int read_identity(service *s, lua_State *L, int mod, identity *id, char **err) {
    const char *res = s->cfg.resource ? s->cfg.resource : s->name;
    lua_getfield(L, mod, "resource");
    if (!s->cfg.resource && !lua_isnil(L, -1)) {
        res = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!res || !jn_router_valid_path(res, IDENT_MAX)) {
            *err = jn_errorf("M.resource must be a path such as \"customers\" or \"v1/orders\": "
                             "segments of letters, digits and -._~ joined by /, up to 64 "
                             "characters");
            lua_pop(L, 1);
            return -1;
        }
    }
    if (s->resource && strcmp(s->resource, res)) {
        *err = jn_errorf("M.resource is now \"%s\", but this API serves /%s; the path is fixed "
                         "while junction runs: restart it to serve the new one",
                         res, s->resource);
        lua_pop(L, 1);
        return -1;
    }
    snprintf(id->resource, sizeof id->resource, "%s", res);
    lua_pop(L, 1);

    const char *noun = s->cfg.singular ? s->cfg.singular : DEFAULT_SINGULAR;
    lua_getfield(L, mod, "singular");
    if (!s->cfg.singular && !lua_isnil(L, -1)) {
        noun = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!noun || !jn_config_valid_singular(noun)) {
            *err = jn_errorf("M.singular must be a word of printable ASCII, up to 64 characters "
                             "(the noun of \"<singular> not found\")");
            lua_pop(L, 1);
            return -1;
        }
    }
    snprintf(id->singular, sizeof id->singular, "%s", noun);
    lua_pop(L, 1);

    id->count = s->cfg.count >= 0 ? s->cfg.count : DEFAULT_COUNT;
    lua_getfield(L, mod, "count");
    if (s->cfg.count < 0 && !lua_isnil(L, -1)) {
        int isint;
        lua_Integer n = lua_tointegerx(L, -1, &isint);
        if (lua_type(L, -1) != LUA_TNUMBER || !isint || n < 0 || n > MAX_COUNT) {
            *err = jn_errorf("M.count must be a whole number from 0 to 10000000 (the records "
                             "generated when the config gives no count)");
            lua_pop(L, 1);
            return -1;
        }
        id->count = (int)n;
    }
    lua_pop(L, 1);
    return 0;
}

static int check_script(jn_script *script, void *ud, char **err) {
    service *s = ud;
    s->script = script;
    lua_State *L = jn_script_host_lua(s->api->scripts);
    int mod = lua_gettop(L);
    const char *missing = NULL;
    lua_getfield(L, mod, "generate");
    if (!lua_isfunction(L, -1)) missing = "generate(opts)";
    lua_getfield(L, mod, "validate");
    if (!lua_isfunction(L, -1)) missing = "validate(record)";
    lua_pop(L, 2);
    if (missing) {
        *err = jn_errorf("the script must define %s", missing);
        return -1;
    }
    lua_getfield(L, mod, "id_type");
    const char *idt = lua_tostring(L, -1);
    int int_ids = idt && !strcmp(idt, "integer");
    if (!idt || (!int_ids && strcmp(idt, "string"))) {
        lua_pop(L, 1);
        *err = jn_errorf("the script must set id_type to \"integer\" or \"string\"");
        return -1;
    }
    lua_pop(L, 1);
    identity id;
    if (read_identity(s, L, mod, &id, err) != 0) return -1;

    /* Field order for the JSON output. */
    char *fields[MAX_FIELDS + 1] = {0};
    lua_getfield(L, mod, "fields");
    if (lua_istable(L, -1)) {
        for (int i = 1; i <= MAX_FIELDS && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            fields[i - 1] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    /* M.faults: the config's four settings, in the config's ranges (fail_next is a run
     * time setting only). */
    jn_fault_settings faults = jn_fault_from_config(&s->cfg.faults);
    lua_getfield(L, mod, "faults");
    if (lua_istable(L, -1) &&
        jn_fault_read(L, -1, API_FAULTS & ~JN_FAULT_FAIL_NEXT, 0, "M.faults.", &faults, err)) {
        lua_pop(L, 1);
        for (int k = 0; fields[k]; k++)
            free(fields[k]);
        return -1;
    }
    lua_pop(L, 1);

    /* Generate and validate every record into a fresh collection; the old one keeps
     * serving until this one is complete. */
    char *saved[MAX_FIELDS + 1];
    memcpy(saved, s->fields, sizeof saved);
    memcpy(s->fields, fields, sizeof fields);
    jn_collection *data = jn_collection_new();
    int rc = -1;
    lua_getfield(L, mod, "generate");
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, id.count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, s->cfg.seed);
    lua_setfield(L, -2, "seed");
    if (jn_script_pcall(script, 1, 1, err) != 0) goto out;
    if (!lua_istable(L, -1)) {
        *err =
            jn_errorf("generate() must return an array of records, got a %s", luaL_typename(L, -1));
        lua_pop(L, 1);
        goto out;
    }
    int arr = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, arr);
    for (lua_Integer i = 1; i <= n; i++) {
        char rec_id[128], where[64];
        snprintf(where, sizeof where, "%lld", (long long)i);
        lua_rawgeti(L, arr, i);
        char *verr = NULL;
        if (!lua_istable(L, -1)) {
            *err = jn_errorf("generate(): record %s is a %s, not a table", where,
                             luaL_typename(L, -1));
            lua_pop(L, 2);
            goto out;
        }
        if (validate(s, L, mod, &verr) != 0) {
            *err = jn_errorf("generate(): record %s is invalid: %s", where, verr);
            free(verr);
            lua_pop(L, 1);
            goto out;
        }
        if (record_id(s, L, int_ids, rec_id, sizeof rec_id) != 0) {
            *err = jn_errorf("generate(): record %s has no valid id (ids are %s)", where,
                             int_ids ? "positive integers" : "non-empty strings");
            lua_pop(L, 2);
            goto out;
        }
        size_t dlen;
        if (jn_collection_get(data, rec_id, &dlen, NULL)) {
            /* Keeping one of the two silently would serve a data set the script did
             * not describe. */
            *err = jn_errorf("generate(): record %s repeats id %s of an earlier record; ids must "
                             "be unique",
                             where, rec_id);
            lua_pop(L, 2);
            goto out;
        }
        jn_sb json;
        const char *jerr;
        if (encode_record(s, L, &json, &jerr) != 0) {
            *err = jn_errorf("generate(): record %s cannot be encoded: %s", where, jerr);
            lua_pop(L, 2);
            goto out;
        }
        jn_collection_put(data, rec_id, json.data, json.len);
        jn_sb_free(&json);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    rc = 0;
out:
    if (rc == 0) {
        for (int i = 0; saved[i]; i++)
            free(saved[i]);
        jn_collection_free(s->data);
        s->data = data;
        s->int_ids = int_ids;
        faults.fail_next = s->fault.set.fail_next; /* the count PUT left runs on */
        s->fault.set = faults;
        if (!s->resource) s->resource = strdup(id.resource);
        memcpy(s->singular, id.singular, sizeof s->singular);
        jn_log_info(s->name, "serving %zu %s from %s", jn_collection_count(data), s->resource,
                    jn_script_name(script));
    } else {
        for (int i = 0; s->fields[i]; i++)
            free(s->fields[i]);
        memcpy(s->fields, saved, sizeof saved);
        jn_collection_free(data);
    }
    lua_settop(L, mod);
    return rc;
}

/* ---- requests ---------------------------------------------------------------------- */

static int etag_matches(const char *inm, const char *etag) {
    if (!inm) return 0;
    if (!strcmp(inm, "*")) return 1;
    /* Weak comparison, as RFC 9110 asks for If-None-Match: W/"x" matches "x". */
    return strstr(inm, etag) != NULL;
}

static void serve_body(jn_http_response *res, jn_rbuf *body, const char *etag,
                       const jn_http_request *req) {
    snprintf(res->etag, sizeof res->etag, "%s", etag);
    if (etag_matches(req->if_none_match, etag)) {
        res->status = 304;
        jn_rbuf_unref(body);
        return;
    }
    res->status = 200;
    res->body = body;
}

/* Decodes body onto the stack as a table from a JSON object. Returns 0, or -1 with the
 * reason in msg. */
static int decode_object(lua_State *L, const char *body, size_t len, char *msg, size_t cap) {
    if (len == 0) {
        snprintf(msg, cap, "request body is empty; send a JSON object");
        return -1;
    }
    char jerr[160];
    if (jn_json_decode(L, body, len, jerr, sizeof jerr) != 0) {
        snprintf(msg, cap, "malformed JSON body: %s", jerr);
        return -1;
    }
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) > 0) {
        lua_pop(L, 1);
        snprintf(msg, cap, "request body must be a JSON object");
        return -1;
    }
    return 0;
}

/* decode_object for a request: fills res with the 400. */
static int decode_body(lua_State *L, const jn_http_request *req, jn_http_response *res) {
    char msg[220];
    if (decode_object(L, req->body, req->body_len, msg, sizeof msg) == 0) return 0;
    jn_http_respond_error(res, 400, msg);
    return -1;
}

/* Validates the record at the top of the stack, stores it and answers with it. */
static void store(service *s, lua_State *L, const jn_http_request *req, const char *id, int status,
                  jn_http_response *res) {
    char *err = NULL;
    int mod = lua_gettop(L); /* the record; mod - 1 is what the caller had */
    int rc = validate(s, L, 0, &err);
    if (rc != 0) {
        const char *why = err;
        size_t len = strlen(err);
        if (rc == FAILED) {
            /* The client learns what went wrong; the traceback and the paths of the
             * script are for the log. */
            jn_sb target;
            jn_sb_init(&target);
            jn_sb_visible(&target, req->path, req->path_len);
            jn_log_warn(s->name, "validate() failed on %s %s, answered 400: %s", req->method_name,
                        target.data, err);
            jn_sb_free(&target);
            len = jn_script_error_brief(err, &why);
        }
        char msg[400];
        snprintf(msg, sizeof msg, "invalid %s: %.*s", s->resource, (int)len,
                 len ? why : "validate() failed without a message");
        jn_http_respond_error(res, 400, msg);
        free(err);
        lua_settop(L, mod - 1);
        return;
    }
    /* The path (or the next free id) decides the id, whatever the body said; an integer
     * id is in plain decimal by now (path_id_ok), so it reads back exactly. */
    if (s->int_ids)
        lua_pushinteger(L, strtoll(id, NULL, 10));
    else
        lua_pushstring(L, id);
    jn_lua_rawsetfield(L, -2, "id");
    jn_sb json;
    const char *jerr;
    if (encode_record(s, L, &json, &jerr) != 0) {
        jn_http_respond_error(res, 400, jerr);
        lua_settop(L, mod - 1);
        return;
    }
    jn_collection_put(s->data, id, json.data, json.len);
    const char *etag;
    size_t len;
    jn_collection_get(s->data, id, &len, &etag);
    snprintf(res->etag, sizeof res->etag, "%s", etag);
    res->status = status;
    res->body = jn_rbuf_from_sb(&json);
    lua_settop(L, mod - 1);
}

static void handle_write(service *s, const jn_http_request *req, const char *id,
                         jn_http_response *res) {
    lua_State *L = jn_script_host_lua(s->api->scripts);
    int top = lua_gettop(L);
    char newid[JN_INT_CHARS];
    size_t len;
    const char *existing = id ? jn_collection_get(s->data, id, &len, NULL) : NULL;
    if (id && !existing && req->method != HTTP_PUT) {
        char msg[80];
        snprintf(msg, sizeof msg, "%s not found", s->singular);
        jn_http_respond_error(res, 404, msg);
        return;
    }
    if (req->method == HTTP_DELETE) {
        jn_collection_remove(s->data, id);
        res->status = 204;
        return;
    }
    if (decode_body(L, req, res) != 0) {
        lua_settop(L, top);
        return;
    }
    if (req->method == HTTP_POST) {
        long long next;
        if (jn_collection_next_id(s->data, &next) != 0) {
            /* Wrapping around would hand out an id that may be taken, and replace it. */
            char msg[400];
            snprintf(msg, sizeof msg,
                     "no id is left for a new record: the largest id, " JN_ID_MAX_STR
                     ", is taken and a POST takes the one after the largest; PUT /%s/<id> "
                     "creates a record under an id you choose",
                     s->resource);
            jn_http_respond_error(res, 409, msg);
            lua_settop(L, top);
            return;
        }
        jn_fmt_int(newid, next);
        store(s, L, req, newid, 201, res);
    } else if (req->method == HTTP_PATCH) {
        /* Merge the body's fields over the stored record. */
        char jerr[160];
        if (jn_json_decode(L, existing, len, jerr, sizeof jerr) != 0) {
            jn_http_respond_error(res, 500, "stored record cannot be decoded");
            lua_settop(L, top);
            return;
        }
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            /* JSON merge patch: a null removes the field. */
            if (lua_islightuserdata(L, -1) && !lua_touserdata(L, -1)) {
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
        lua_remove(L, -2);
        store(s, L, req, id, 200, res);
    } else {
        /* PUT replaces, or creates the record under that id. */
        store(s, L, req, id, existing ? 200 : 201, res);
    }
    lua_settop(L, top);
}

/* Whether id, from a path, is an id of this API's records; else fills res with a 400.
 * Integer ids have one spelling (collection.h): "007" was stored as a second record
 * beside 7, and 99999999999999999999999 as 9223372036854775807, which GET then could
 * not find. */
static int path_id_ok(service *s, const char *id, jn_http_response *res) {
    long long v;
    int rc = s->int_ids ? jn_collection_parse_id(id, &v) : 0;
    if (rc == 0) return 1;
    jn_sb msg;
    jn_sb_init(&msg);
    if (rc == JN_ID_OUT_OF_RANGE) {
        jn_sb_puts(&msg, "id ");
        jn_sb_echo(&msg, id, strlen(id), ECHO_MAX);
        jn_sb_puts(&msg, " is out of range");
    } else {
        jn_sb_puts(&msg, "id \"");
        jn_sb_echo(&msg, id, strlen(id), ECHO_MAX);
        jn_sb_puts(&msg, "\" is not an integer in plain decimal");
    }
    jn_sb_printf(&msg,
                 ": ids of /%s are integers from 1 to " JN_ID_MAX_STR
                 ", written with digits only and no leading zero (7, not 007, +7 or 7.0)",
                 s->resource);
    jn_http_respond_error(res, 400, msg.data);
    jn_sb_free(&msg);
    return 0;
}

/* Where the Link header points: the host the client asked (RFC 9110 makes Host required),
 * when it is one that can go into a URL as it is, else the listen address. */
static void link_header(service *s, const jn_http_request *req, size_t page, size_t per_page,
                        char *out, size_t cap) {
    char listen[96];
    snprintf(listen, sizeof listen, "%s:%d", s->cfg.listen.host, jn_http_server_port(s->http));
    const char *host = req->host && jn_paging_host_ok(req->host) ? req->host : listen;
    if (jn_paging_link(out, cap, host, s->resource, page, per_page) < 0)
        jn_paging_link(out, cap, listen, s->resource, page, per_page);
}

/* GET /<resource> of an API that pages (paging.h has the contract). Pages come in id
 * order and carry no ETag: a client walking them needs each answer whole, and a 304
 * would hide the next cursor or link. */
static void serve_page(service *s, const jn_http_request *req, jn_http_response *res) {
    jn_page_query q;
    char err[200];
    jn_paging_style style = s->cfg.paging;
    if (jn_paging_parse(style, (size_t)s->cfg.page_size, (size_t)s->cfg.max_page_size, req->query,
                        req->query_len, &q, err, sizeof err) != 0) {
        jn_http_respond_error(res, 400, err);
        return;
    }
    size_t total = jn_collection_count(s->data);
    size_t from = q.after ? jn_collection_position_after(s->data, q.after_id) : q.offset;
    jn_sb body;
    jn_sb_init(&body);
    if (style == JN_PAGING_CURSOR) jn_sb_puts(&body, "{\"data\":");
    size_t got = jn_collection_page(s->data, from, q.limit, &body);
    int more = got > 0 && from + got < total;
    int n = snprintf(res->headers, sizeof res->headers, "X-Total-Count: %zu\r\n", total);
    if (style == JN_PAGING_CURSOR) {
        jn_sb_puts(&body, ",\"next_cursor\":");
        if (more) {
            char cursor[JN_CURSOR_MAX];
            jn_paging_cursor_encode(jn_collection_id_at(s->data, from + got - 1), cursor);
            jn_sb_printf(&body, "\"%s\"}", cursor);
        } else {
            jn_sb_puts(&body, "null}");
        }
    } else if (style == JN_PAGING_LINK && more) {
        link_header(s, req, q.page, q.limit, res->headers + n, sizeof res->headers - (size_t)n);
    }
    res->status = 200;
    res->body = jn_rbuf_from_sb(&body);
}

static void handle(void *ud, const jn_http_request *req, jn_http_response *res) {
    service *s = ud;
    if (s->cfg.token && !jn_http_bearer_ok(req, s->cfg.token)) {
        res->route = "unauthorized";
        jn_http_respond_unauthorized(res, s->token_key);
        return;
    }
    jn_route_match m;
    int r = jn_http_route(&s->table, req, res, &m);
    if (r < 0) return;
    if (jn_fault_inject(&s->fault, res) != JN_FAULT_PASS) return;
    if (r == R_ITEM && !path_id_ok(s, m.param, res)) return;

    if (r == R_COLLECTION && req->method == HTTP_GET && s->cfg.paging != JN_PAGING_NONE) {
        serve_page(s, req, res);
    } else if (r == R_COLLECTION && req->method == HTTP_GET) {
        long limit, offset;
        int given = jn_http_limit_offset(req, res, &limit, &offset);
        if (given < 0) return;
        if (given) {
            size_t lim = limit >= 0 ? (size_t)limit : (size_t)-1;
            jn_rbuf *b = jn_collection_slice(s->data, (size_t)offset, lim, res->etag);
            char etag[72];
            memcpy(etag, res->etag, sizeof etag);
            snprintf(res->headers, sizeof res->headers, "X-Total-Count: %zu\r\n",
                     jn_collection_count(s->data));
            serve_body(res, b, etag, req);
        } else {
            const char *etag;
            jn_rbuf *b = jn_collection_array(s->data, &etag);
            serve_body(res, b, etag, req);
        }
    } else if (r == R_ITEM && req->method == HTTP_GET) {
        size_t len;
        const char *etag;
        const char *json = jn_collection_get(s->data, m.param, &len, &etag);
        if (!json) {
            char msg[80];
            snprintf(msg, sizeof msg, "%s not found", s->singular);
            jn_http_respond_error(res, 404, msg);
            return;
        }
        serve_body(res, jn_rbuf_new(json, len), etag, req);
    } else {
        handle_write(s, req, r == R_ITEM ? m.param : NULL, res);
    }
    jn_fault_malform(&s->fault, res);
}

/* ---- life -------------------------------------------------------------------------- */

static int start_service(jn_api *a, service *s, const jn_config *cfg, char **err) {
    s->api = a;
    s->name = s->cfg.name;
    jn_fault_settings faults = jn_fault_from_config(&s->cfg.faults);
    jn_fault_init(&s->fault, &faults);
    snprintf(s->token_key, sizeof s->token_key, "apis.%s.token", s->name);
    if (!jn_script_add(a->scripts, s->name, s->cfg.script, check_script, s, err)) {
        s->script = NULL; /* the rejected version's check saw it: gone with it */
        return -1;
    }
    /* The script's first load fixed the path. */
    jn_sb pattern;
    jn_sb_init(&pattern);
    jn_sb_printf(&pattern, "/%s", s->resource);
    s->pattern_collection = jn_sb_steal(&pattern);
    jn_sb_printf(&pattern, "/%s/:id", s->resource);
    s->pattern_item = jn_sb_steal(&pattern);
    s->routes[R_COLLECTION].pattern = s->pattern_collection;
    s->routes[R_COLLECTION].methods = JN_METHOD(HTTP_GET) | JN_METHOD(HTTP_POST);
    s->routes[R_ITEM].pattern = s->pattern_item;
    s->routes[R_ITEM].methods =
        JN_METHOD(HTTP_GET) | JN_METHOD(HTTP_PUT) | JN_METHOD(HTTP_PATCH) | JN_METHOD(HTTP_DELETE);
    snprintf(s->serves, sizeof s->serves, "this API serves /%s and /%s/:id", s->resource,
             s->resource);
    /* OPTIONS is a 405 here, as on the APIs this one stands in for. */
    s->table = (jn_http_routes){s->routes, 2, s->serves, 0};
    jn_http_server_opts o = {
        .name = s->name,
        .listen = s->cfg.listen,
        .max_body = (size_t)cfg->api.max_body_bytes,
        .request_timeout_ms = cfg->api.request_timeout_ms,
        .keepalive_timeout_ms = cfg->api.keepalive_timeout_ms,
        .max_connections = cfg->api.max_connections,
    };
    s->http = jn_http_server_start(a->loop, &o, handle, s, err);
    return s->http ? 0 : -1;
}

jn_api *jn_api_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg, char **err) {
    jn_api *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->loop = loop;
    a->scripts = scripts;
    a->n = cfg->napis;
    a->svc = calloc((size_t)a->n, sizeof *a->svc);
    if (!a->svc) abort();
    for (int i = 0; i < a->n; i++) {
        a->svc[i].cfg = cfg->apis[i];
        if (start_service(a, &a->svc[i], cfg, err) != 0) {
            a->n = i + 1; /* the services that have anything to undo */
            jn_api_stop(a, NULL, NULL);
            return NULL;
        }
    }
    return a;
}

static void on_service_stopped(void *arg) {
    jn_api *a = arg;
    if (--a->running > 0) return;
    for (int i = 0; i < a->n; i++) {
        service *s = &a->svc[i];
        /* No reload may reach a check whose service is gone. */
        if (s->script) jn_script_remove(s->script);
        jn_collection_free(s->data);
        for (int k = 0; s->fields[k]; k++)
            free(s->fields[k]);
        free(s->resource);
        free(s->pattern_collection);
        free(s->pattern_item);
    }
    void (*done)(void *) = a->done;
    void *arg2 = a->done_arg;
    free(a->svc);
    free(a);
    if (done) done(arg2);
}

/* Also undoes a failed start: a service whose server never started has none to stop. */
void jn_api_stop(jn_api *a, void (*done)(void *), void *arg) {
    a->done = done;
    a->done_arg = arg;
    a->running = 1; /* held while the stops are issued */
    for (int i = 0; i < a->n; i++)
        if (a->svc[i].http)
            a->running++, jn_http_server_stop(a->svc[i].http, on_service_stopped, a);
    on_service_stopped(a);
}

static service *find_service(jn_api *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->svc[i].name, name)) return &a->svc[i];
    return NULL;
}

long jn_api_records(jn_api *a, const char *name) {
    service *s = a ? find_service(a, name) : NULL;
    return s ? (long)jn_collection_count(s->data) : -1;
}

int jn_api_set_faults(jn_api *a, const char *name, const char *json, size_t len, char **err) {
    service *s = find_service(a, name);
    if (!s) {
        jn_sb names;
        jn_sb_init(&names);
        jn_sb_puts(&names, "no such API in this process; use ");
        for (int i = 0; i < a->n; i++)
            jn_sb_printf(&names, "%s%s",
                         i == 0          ? ""
                         : i == a->n - 1 ? " or "
                                         : ", ",
                         a->svc[i].name);
        *err = jn_sb_steal(&names);
        return JN_ENOENT;
    }
    lua_State *L = jn_script_host_lua(a->scripts);
    int top = lua_gettop(L);
    /* The message alone: the admin server wraps it in {"error":...} (it came wrapped
     * twice, a JSON document inside the string). */
    char msg[220];
    if (decode_object(L, json, len, msg, sizeof msg) != 0) {
        *err = jn_errorf("faults: %s", msg);
        return JN_EINVAL;
    }
    jn_fault_settings f = jn_fault_from_config(&s->cfg.faults);
    int rc = jn_fault_read(L, -1, API_FAULTS, 1, "faults: ", &f, err);
    lua_settop(L, top);
    if (rc != 0) return JN_EINVAL;
    s->fault.set = f;
    jn_fault_log(s->name, &f, API_FAULTS);
    return 0;
}

void jn_api_status_json(jn_api *a, jn_sb *out) {
    jn_sb_putc(out, '{');
    static const char *const paging[] = {"none", "offset", "cursor", "link"};
    for (int i = 0; i < a->n; i++) {
        service *s = &a->svc[i];
        /* Names and resources are the config's: escaped like any string from outside. */
        if (i) jn_sb_putc(out, ',');
        jn_sb_json_string(out, s->name, strlen(s->name));
        jn_sb_printf(out,
                     ":{\"records\":%zu,\"port\":%d,\"resource\":", jn_collection_count(s->data),
                     jn_http_server_port(s->http));
        jn_sb path;
        jn_sb_init(&path);
        jn_sb_putc(&path, '/');
        jn_sb_puts(&path, s->resource);
        jn_sb_json_string(out, path.data, path.len);
        jn_sb_free(&path);
        jn_sb_printf(out, ",\"paging\":\"%s\",\"auth\":%s,\"faults\":", paging[s->cfg.paging],
                     s->cfg.token ? "true" : "false");
        jn_fault_json(&s->fault.set, API_FAULTS, out);
        jn_sb_putc(out, '}');
    }
    jn_sb_putc(out, '}');
}

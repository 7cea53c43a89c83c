/* Redis glue: hiredis' async API on the libuv loop (its adapters/libuv.h). Commands sent
 * in one loop turn go out pipelined in one write and their replies come back in one
 * read. The connection is re-established with a backoff when Redis goes away; callers learn of it
 * through the state callback and by errors on their commands (never by a silent success). */
#ifndef JN_REDIS_H
#define JN_REDIS_H

#include <stddef.h>
#include <uv.h>

typedef struct jn_redis jn_redis;

/* connected is 1 when a connection is (re)established, 0 when it is lost. */
typedef void (*jn_redis_state_cb)(void *ud, int connected);
/* A reply, valid during the callback only. */
typedef struct jn_redis_reply jn_redis_reply;
typedef enum {
    JN_REDIS_STRING,
    JN_REDIS_ARRAY,
    JN_REDIS_INTEGER,
    JN_REDIS_NIL,
    JN_REDIS_STATUS,
    JN_REDIS_ERROR
} jn_redis_reply_type;

/* The caller's handle on its commands, embedded in its own request (container_of finds
 * the request back): sending allocates nothing. Several commands may share one call; its
 * callback runs once per reply, in the order the commands were sent. reply is NULL when
 * no answer will come (the connection was lost, or the client is closing). */
typedef struct jn_redis_call jn_redis_call;
typedef void (*jn_redis_reply_cb)(jn_redis_call *call, const jn_redis_reply *reply);
struct jn_redis_call {
    jn_redis_reply_cb cb; /* set by the caller */
    jn_redis *r;          /* set by jn_redis_send */
};

typedef struct {
    const char *host;
    int port;
    const char *username; /* NULL or "": the default user */
    const char *password; /* NULL or "": no AUTH */
    int db;
} jn_redis_opts;

/* Connects (and logs in) in the background; the state callback reports the connection
 * up once the server accepted the login. A refused login is logged once with what to
 * check and retried with the reconnect backoff. */
jn_redis *jn_redis_new(uv_loop_t *loop, const jn_redis_opts *o, jn_redis_state_cb cb, void *ud);
/* Logged in: commands may be sent. */
int jn_redis_connected(const jn_redis *r);
/* Why the client is not up (the last connect or login failure, or "connecting"); NULL
 * while it is. */
const char *jn_redis_down_reason(const jn_redis *r);
/* Queues one command, written in RESP (resp.h), for the next write; cmd is copied.
 * Returns 0, or -1 when not connected (call->cb is not called). */
int jn_redis_send(jn_redis *r, jn_redis_call *call, const char *cmd, size_t len);
jn_redis_reply_type jn_redis_reply_kind(const jn_redis_reply *reply);
long long jn_redis_reply_integer(const jn_redis_reply *reply);
/* A string, status or error reply's text ("" for the others); *len gets its length. */
const char *jn_redis_reply_str(const jn_redis_reply *reply, size_t *len);
/* An array's elements (0 for the other kinds). */
size_t jn_redis_reply_count(const jn_redis_reply *reply);
const jn_redis_reply *jn_redis_reply_at(const jn_redis_reply *reply, size_t i);
/* Commands in flight (sent, reply not yet received). */
long jn_redis_inflight(const jn_redis *r);
/* Disconnects (pending callbacks run with NULL replies), closes every handle, frees, then
 * calls done(arg). */
void jn_redis_close(jn_redis *r, void (*done)(void *), void *arg);

#endif

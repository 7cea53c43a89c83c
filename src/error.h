/* How a function of junction fails: the one convention every module follows (libuv's).
 *
 * Return values. A function that can fail returns int: 0 on success, a negative code on
 * failure. A result that is not an error is never folded into the code: a count, a port,
 * "found"/"absent" or "nothing changed" is either a non-negative result its comment names
 * (router.h's query lookup returns 1, 0 or JN_EFAIL) or an out-parameter. A function
 * returning a pointer returns NULL on failure. What an HTTP server answers is a status,
 * not an error code: the few functions whose result IS the status to answer (the request
 * reader of http_parse.h) say so.
 *
 * The codes:
 *   JN_EFAIL   the failure a person must read about: the reason is in the function's
 *              char **err (see jn_errorf below) or, for a function without one, in the
 *              log. Most functions have no other failure, and return -1 for it.
 *   JN_EINVAL  what the caller handed in is not acceptable (bad JSON, a bad setting).
 *   JN_ENOENT  what the caller named does not exist (an unknown API).
 *   JN_EAGAIN  nothing is wrong, only full or busy now: try again later.
 *   libuv's own codes (UV_EADDRINUSE, ...: negative errno) for a failure of the system,
 *   passed on as libuv returned them so uv_strerror names them; JN_EINVAL, JN_ENOENT and
 *   JN_EAGAIN are libuv's too, for the same reason. JN_EFAIL shares its value with
 *   UV_EPERM: a function that can return a libuv code says so and never returns JN_EFAIL.
 *   librdkafka's errors (rd_kafka_resp_err_t) do not leave the Kafka glue (kafka_*.c) as
 *   they are: its functions and its producer's and admin's callbacks hand them on as
 *   codes of their own range, JN_EKAFKA_MIN..JN_EKAFKA_MAX (JN_EKAFKA(e), kafka_conf.h),
 *   which jn_kafka_strerror names with librdkafka's words. The one exception is the
 *   consumer's on_commit and on_error (kafka_consumer.h): they hand over librdkafka's
 *   partition lists, whose entries carry librdkafka's errors anyway.
 *
 * Reasons. A function that fails for a reason a person must read takes `char **err` and,
 * on failure only, sets *err to a malloc'd message the caller frees. The message is made
 * by jn_errorf (or, when it is put together piece by piece, in a jn_sb handed over with
 * jn_sb_steal: the same kind of string). Messages follow STYLE.md: what failed, with the
 * value that caused it, and what to do. On the data path, where a failure is a per-message
 * event and allocating for it is waste, a function instead writes its reason into a
 * caller's buffer (char *why, size_t cap), or points at static text (const char **why).
 *
 * Starting. A jn_<role>_start or jn_<x>_new that fails leaves nothing behind: what it
 * registered on the loop is closed (freed by the close callbacks, on the loop's next
 * turn: uv_run then returns with no handle left), what it allocated is freed, and the
 * scripts it added to the host are removed. */
#ifndef JN_ERROR_H
#define JN_ERROR_H

#include <stdarg.h>
#include <uv.h>

#define JN_OK     0
#define JN_EFAIL  (-1)
#define JN_EINVAL UV_EINVAL
#define JN_ENOENT UV_ENOENT
#define JN_EAGAIN UV_EAGAIN

/* Below every errno value libuv can return (its own go down to -4095, UV_EOF). */
#define JN_EKAFKA_MAX (-10000)
#define JN_EKAFKA_MIN (-12000)

/* A message for a person, formatted into a new string the caller frees: the way a
 * function that fails hands its reason over (*err = jn_errorf(...)). Never NULL: out
 * of memory aborts, as everywhere in junction. */
char *jn_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *jn_verrorf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif

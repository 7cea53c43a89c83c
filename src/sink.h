/* The analytics sink: merged records are gathered into JSON-array batches (size and
 * linger configurable) and POSTed with libcurl multi, several batches in flight. Each
 * batch carries an Idempotency-Key derived from its records, so a repeat after a crash
 * can be recognised downstream. Transient failures (network, timeouts, 408, 429, 5xx)
 * are retried with backoff for as long as it takes: a record leaves the sink only as
 * delivered or as rejected for good (another 4xx, after the batch was split down to the
 * one record the receiver refuses). */
#ifndef JN_SINK_H
#define JN_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http_client.h"

typedef struct jn_sink jn_sink;

#define JN_SINK_MAX_HEADERS 16

/* status 0: delivered. Otherwise the HTTP status that rejected the record for good, with
 * the receiver's answer in reason: data for the log, not an error code (error.h); the
 * Kafka sink reports a negative code of error.h's Kafka range instead. */
typedef void (*jn_sink_done_cb)(void *ud, void *item, int status, const char *reason);

typedef struct {
    const char *url;
    int batch_size;
    int linger_ms;
    int max_inflight;
    int timeout_ms;
    int retry_base_ms;
    int retry_max_ms;
    const char *const *headers; /* NULL-terminated "Name: value" lines sent with every POST
                                   (copied), or NULL */
    const char *name;           /* the sink's name, labelling its metrics; NULL: none */
    const char *ca_file;        /* HTTPS: the CAs to trust (copied); NULL: the system's */
    const char *cert_file;      /* HTTPS: client certificate (copied); NULL: none */
    const char *key_file;       /* its key when not in cert_file (copied); NULL: none */
    int insecure;               /* HTTPS: do not check the server's certificate */
} jn_sink_opts;

jn_sink *jn_sink_new(uv_loop_t *loop, jn_http_client *http, const jn_sink_opts *o,
                     jn_sink_done_cb cb, void *ud);
/* Queues one record (JSON text, copied). key identifies the record for the batch's
 * Idempotency-Key (the SHA-256 of its canonical JSON, say). */
void jn_sink_add(jn_sink *s, const char *json, size_t len, const unsigned char key[32], void *item);
/* Records queued and not yet reported. */
size_t jn_sink_pending(const jn_sink *s);
/* Sends what is gathered without waiting for the linger time. */
void jn_sink_flush(jn_sink *s);
/* What a sink did, counted where it happens: /metrics shows ok, retried and rejected
 * (junction_sink_batches_total, junction_sink_rejected_total), /api/status and the
 * progress line read them. */
typedef struct {
    uint64_t sent;     /* POSTs sent, repeats included */
    uint64_t ok;       /* POSTs answered 2xx */
    uint64_t retried;  /* POSTs that failed and are sent again */
    uint64_t rejected; /* records refused for good (dead-lettered) */
} jn_sink_counts;

/* s's counters; valid until s is closed. */
const jn_sink_counts *jn_sink_counts_of(const jn_sink *s);
/* Stops retrying; records not delivered are not reported (their messages are not
 * committed, so they are read again by the next run). Frees; done(arg) runs after.
 * Close the HTTP client first: its aborted requests free their batches. */
void jn_sink_close(jn_sink *s, void (*done)(void *), void *arg);

#endif

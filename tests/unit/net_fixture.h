/* What the C unit tests share for working over loopback: a free port, and a jn_http_server
 * on a port of the kernel's choice standing in for the receiver a client under test talks
 * to. For one test file each, like kafka_mock.h and redis_server.h: everything static. */
#ifndef JN_TEST_NET_FIXTURE_H
#define JN_TEST_NET_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"

/* A loopback port nobody listens on now: bound by the kernel's choice, then released. */
static inline int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A server named name on 127.0.0.1 (jn_http_server_port says where) answering with
 * handler; generous limits, 5 s timeouts. Fails the test when it cannot start. */
/* extra_header: a request header the handler reads (req->extra), or NULL. */
static inline jn_http_server *fixture_server_start(uv_loop_t *loop, const char *name,
                                                   const char *extra_header,
                                                   jn_http_handler handler, void *ud) {
    /* Port 0 (the kernel picks one) is what the config parser refuses, so the address is
     * filled in directly. */
    jn_http_server_opts o = {.name = name,
                             .listen = {"127.0.0.1", 0},
                             .max_body = 4 << 20,
                             .request_timeout_ms = 5000,
                             .keepalive_timeout_ms = 5000,
                             .max_connections = 100,
                             .extra_header = extra_header};
    char *err = NULL;
    jn_http_server *srv = jn_http_server_start(loop, &o, handler, ud, &err);
    if (!srv) fail_msg("server: %s", err);
    return srv;
}

#endif

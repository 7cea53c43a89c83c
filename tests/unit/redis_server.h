/* A private redis-server for the unit tests of the Redis glue and of de-duplication:
 * started by the test itself on a free loopback port, in a temporary folder, without
 * persistence (never the shared one on 6379), killed with the test. */
#ifndef JN_TEST_REDIS_SERVER_H
#define JN_TEST_REDIS_SERVER_H

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net_fixture.h"

/* A synchronous connection for checking what the server holds; NULL when it is down. */
static inline redisContext *sync_connect(int port) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) redisSetTimeout(c, (struct timeval){.tv_sec = 2});
    return c;
}

static inline int server_answers(int port) {
    redisContext *c = sync_connect(port);
    if (!c) return 0;
    redisReply *rep = redisCommand(c, "PING");
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep) freeReplyObject(rep);
    redisFree(c);
    return ok;
}

static inline pid_t server_start(const char *dir, int port) {
    char portstr[16], log[256];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan server if the test dies */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        if (server_answers(port)) return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) fail_msg("redis-server exited, see %s", log);
        usleep(10000);
    }
    fail_msg("redis-server did not answer on port %d", port);
    return -1;
}

static inline void server_kill(pid_t *pid) {
    if (*pid <= 0) return;
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

#endif

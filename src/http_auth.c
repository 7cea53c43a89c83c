#include "http_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int jn_http_bearer_ok(const jn_http_request *req, const char *token) {
    if (!token || !*token) return 1;
    const char *v = req->authorization;
    if (!v) return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "bearer ", 7) != 0) return 0;
    v += 7;
    while (*v == ' ')
        v++;
    size_t n = strlen(v), want = strlen(token);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    unsigned diff = n != want;
    for (size_t i = 0; i < want; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? v[i] : 0);
    return diff == 0;
}

int jn_http_cross_site(const jn_http_request *req) {
    if (!req->origin) return 0; /* not a browser, or a same-origin GET */
    const char *o = req->origin;
    const char *sep = strstr(o, "://");
    if (!sep) return 1; /* "null" (a sandboxed page, a file) or garbage */
    o = sep + 3;
    size_t olen = strcspn(o, "/");
    if (!req->host) return 1;
    return strlen(req->host) != olen || strncasecmp(o, req->host, olen) != 0;
}

int jn_http_is_loopback(const char *host) {
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "[::1]") ||
           !strcasecmp(host, "localhost");
}

int jn_http_guard(const jn_http_request *req, const char *token, const char *what,
                  jn_http_response *res) {
    if (jn_http_cross_site(req)) {
        jn_http_respond_error(res, 403,
                              "cross-site request refused: this endpoint changes state and "
                              "takes requests from its own origin or from non-browser clients");
        return 1;
    }
    if (jn_http_bearer_ok(req, token)) return 0;
    jn_http_respond_unauthorized(res, what);
    return 1;
}

void jn_http_respond_unauthorized(jn_http_response *res, const char *what) {
    char msg[160];
    snprintf(msg, sizeof msg, "missing or wrong bearer token: send Authorization: Bearer <%s>",
             what);
    jn_http_respond_error(res, 401, msg);
    snprintf(res->headers, sizeof res->headers, "WWW-Authenticate: Bearer realm=\"junction\"\r\n");
}

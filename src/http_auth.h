/* Who is calling: the checks a server makes before a request may change state. */
#ifndef JN_HTTP_AUTH_H
#define JN_HTTP_AUTH_H

#include "http_parse.h"
#include "http_server.h"

/* Whether req carries "Authorization: Bearer <token>" (RFC 6750; the scheme is
 * case-insensitive), compared in time independent of where the two differ. A NULL or
 * empty token asks for nothing: always 1. */
int jn_http_bearer_ok(const jn_http_request *req, const char *token);
/* Whether a browser sent req from a page of another site: it has an Origin whose
 * host[:port] is not the request's Host. Browsers send Origin with every cross-site POST,
 * PUT and DELETE, so a page elsewhere cannot make a person's browser reload scripts or
 * inject faults, whatever Content-Type it picks. */
int jn_http_cross_site(const jn_http_request *req);
/* The gate of a request that changes state: refuses a cross-site one (403) and one
 * without the bearer token when token is set (401 with WWW-Authenticate), writing the
 * answer to res and returning 1; 0 lets it through. what names the token in the message
 * ("admin.token"). */
int jn_http_guard(const jn_http_request *req, const char *token, const char *what,
                  jn_http_response *res);
/* Fills res with the 401 of a request without the bearer token: {"error": ...} naming
 * the token (what, "admin.token"), and WWW-Authenticate (RFC 9110 asks a 401 to name the
 * scheme it wants). */
void jn_http_respond_unauthorized(jn_http_response *res, const char *what);
/* Whether a listen host is a loopback address (127.0.0.0/8, ::1, localhost). */
int jn_http_is_loopback(const char *host);

#endif

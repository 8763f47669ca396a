/*
 * ui_http.h - the web page at /ui/ (docs/ui.md): its files, built into
 * dmd (assets.h), and the few endpoints that turn a login into a session
 * (session.h). Everything the page shows or changes goes through POST
 * /ui/rpc, which is dmd's JSON-RPC API (rpc.h) for the session's user: the
 * page can do nothing the command line cannot.
 *
 *   GET  /ui/, /ui/FILE   the page's files (no session needed)
 *   POST /ui/login        basic authentication (user, API key) -> a session:
 *                         the dm_ui cookie and {"user","admin","csrf"}
 *   GET  /ui/session      the session's {"user","admin","csrf"}, or 401
 *   POST /ui/logout       ends the session (CSRF header needed)
 *   POST /ui/rpc          JSON-RPC as the session's user (CSRF header needed)
 *
 * http.c routes these: it authenticates the login (its basic
 * authentication, as for /rpc) and reads /ui/rpc's body; this file answers
 * the rest and says who a page's request is for.
 */
#ifndef DM_SERVER_API_UI_UI_HTTP_H
#define DM_SERVER_API_UI_UI_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>

#include "server/dots/caller.h"

struct dm_api_env;
struct dm_err;

#define DM_UI_COOKIE      "dm_ui"
#define DM_UI_CSRF_HEADER "X-DM-CSRF"

/* Whether url is the page's ("/ui" or under "/ui/"). */
bool dm_ui_path(const char *url);
/* POST /ui/rpc; POST /ui/login. */
bool dm_ui_is_rpc(const char *url, const char *method);
bool dm_ui_is_login(const char *url, const char *method);

/*
 * The caller of a change the page asks for (POST /ui/rpc): the user of
 * the session its cookie names, looked up again (a user removed since
 * login is refused), if its X-DM-CSRF header is the session's. DM_EPERM
 * otherwise, saying which, with *status the HTTP status to refuse with:
 * 401 without a session (log in), 403 without the right CSRF token.
 */
int dm_ui_caller(const struct dm_api_env *env, struct MHD_Connection *c, struct dm_caller *out,
		 unsigned *status, struct dm_err *err);

/* A refusal of a page's request with status: err as a JSON-RPC error,
 * and no basic-authentication challenge (the page has its own login
 * form). */
enum MHD_Result dm_ui_refuse(struct MHD_Connection *c, unsigned status, const struct dm_err *err);

/* The answer to POST /ui/login for caller (authenticated by http.c): a
 * new session. tls: the connection is HTTPS (the cookie is then Secure). */
enum MHD_Result dm_ui_login(const struct dm_api_env *env, struct MHD_Connection *c,
			    const struct dm_caller *caller, bool tls);

/* The answer to any other request of the page but POST /ui/rpc. */
enum MHD_Result dm_ui_answer(const struct dm_api_env *env, struct MHD_Connection *c,
			     const char *url, const char *method, bool tls);

#endif

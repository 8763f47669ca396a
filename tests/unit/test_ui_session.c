/*
 * test_ui_session.c - the web page's session table: a login opens a
 * session with two distinct random tokens, a lookup answers its caller and
 * CSRF token, logout and idleness end it, a token of another length or
 * another's is no session, and a full table pushes out the least recently
 * used session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor/actor.h"
#include "server/api/ui/session.h"
#include "util/err.h"

#include "util/banned.h"

struct fixture {
	struct dm_sched *sched;
	struct dm_ui_sessions *ss;
};

static void open_table(struct fixture *f, unsigned idle_s)
{
	struct dm_sched_opts o = {0, 0, 2, 2};
	struct dm_err err;

	assert_int_equal(dm_sched_new(&f->sched, &o, &err), 0);
	assert_int_equal(dm_ui_sessions_open(&f->ss, f->sched, idle_s, &err), 0);
}

static void close_table(struct fixture *f)
{
	/* as dmd does: the scheduler (and the table's actor) first */
	dm_sched_free(f->sched);
	dm_ui_sessions_free(f->ss);
}

static void login(struct fixture *f, const char *user, char *token, char *csrf)
{
	struct dm_caller c;
	struct dm_err err;

	memset(&c, 0, sizeof(c));
	snprintf(c.user, sizeof(c.user), "%s", user);
	c.admin = !strcmp(user, "admin");
	assert_int_equal(dm_ui_session_open(f->ss, &c, token, csrf, &err), 0);
}

static void open_find_end(void **state)
{
	char token[DM_UI_TOKEN_LEN + 1], csrf[DM_UI_TOKEN_LEN + 1], other[DM_UI_TOKEN_LEN + 1];
	struct dm_ui_session s;
	struct fixture f;
	struct dm_err err;

	open_table(&f, 0);
	login(&f, "bob", token, csrf);
	assert_int_equal(strlen(token), DM_UI_TOKEN_LEN);
	assert_string_not_equal(token, csrf);
	assert_int_equal(dm_ui_session_find(f.ss, token, &s, &err), 0);
	assert_string_equal(s.caller.user, "bob");
	assert_false(s.caller.admin);
	assert_string_equal(s.csrf, csrf);

	/* another's token, a token cut short, the CSRF token: no session */
	memcpy(other, token, sizeof(other));
	other[0] = other[0] == 'a' ? 'b' : 'a';
	assert_int_equal(dm_ui_session_find(f.ss, other, &s, &err), DM_EPERM);
	assert_string_equal(err.msg, DM_UI_SESSION_GONE_MSG);
	other[10] = '\0';
	assert_int_equal(dm_ui_session_find(f.ss, other, &s, &err), DM_EPERM);
	assert_int_equal(dm_ui_session_find(f.ss, csrf, &s, &err), DM_EPERM);

	assert_int_equal(dm_ui_session_end(f.ss, token, &err), 0);
	assert_int_equal(dm_ui_session_find(f.ss, token, &s, &err), DM_EPERM);
	assert_int_equal(dm_ui_session_end(f.ss, token, &err), 0); /* again: no error */
	close_table(&f);
}

static void idle_sessions_expire(void **state)
{
	char t1[DM_UI_TOKEN_LEN + 1], t2[DM_UI_TOKEN_LEN + 1], csrf[DM_UI_TOKEN_LEN + 1];
	struct dm_ui_session s;
	struct fixture f;
	struct dm_err err;

	open_table(&f, 1);
	login(&f, "admin", t1, csrf);
	login(&f, "bob", t2, csrf);
	/* t1 kept in use, t2 left alone */
	for (int i = 0; i < 5; i++) {
		usleep(250 * 1000);
		assert_int_equal(dm_ui_session_find(f.ss, t1, &s, &err), 0);
	}
	assert_int_equal(dm_ui_session_find(f.ss, t2, &s, &err), DM_EPERM);
	assert_int_equal(dm_ui_session_find(f.ss, t1, &s, &err), 0);
	assert_true(s.caller.admin);
	close_table(&f);
}

static void a_full_table_drops_the_least_recently_used(void **state)
{
	static char tokens[DM_UI_SESSIONS_MAX][DM_UI_TOKEN_LEN + 1];
	char csrf[DM_UI_TOKEN_LEN + 1], extra[DM_UI_TOKEN_LEN + 1];
	struct dm_ui_session s;
	struct fixture f;
	struct dm_err err;

	open_table(&f, 0);
	for (size_t i = 0; i < DM_UI_SESSIONS_MAX; i++)
		login(&f, "bob", tokens[i], csrf);
	/* the first is used again: the second is now the least recent */
	assert_int_equal(dm_ui_session_find(f.ss, tokens[0], &s, &err), 0);
	login(&f, "bob", extra, csrf);
	assert_int_equal(dm_ui_session_find(f.ss, tokens[1], &s, &err), DM_EPERM);
	assert_int_equal(dm_ui_session_find(f.ss, tokens[0], &s, &err), 0);
	assert_int_equal(dm_ui_session_find(f.ss, tokens[2], &s, &err), 0);
	assert_int_equal(dm_ui_session_find(f.ss, extra, &s, &err), 0);
	close_table(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_find_end),
		cmocka_unit_test(idle_sessions_expire),
		cmocka_unit_test(a_full_table_drops_the_least_recently_used),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

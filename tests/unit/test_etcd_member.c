/*
 * test_etcd_member.c - the local etcd member a dmd runs (etcd_member.h),
 * with the real etcd: its ports, starting it until it answers, stopping
 * it, the member a dead dmd left behind, a pid file that names another
 * program (never signalled), and an etcd that cannot start.
 *
 * Every test works in a data directory of its own under one mkdtemp
 * directory, removed by the group teardown. A leftover member is made the
 * way a dmd killed with SIGKILL makes one: a forked process starts it and
 * exits without stopping it. Every etcd a test starts is stopped by it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv/kv.h"
#include "server/cluster/etcd_access.h"
#include "server/cluster/etcd_member.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

static char tmpdir[PATH_MAX];

/* out: the temp directory's data directory name, made. */
static void make_data_dir(char *out, const char *name)
{
	assert_true(snprintf(out, PATH_MAX, "%s/%s", tmpdir, name) < PATH_MAX);
	assert_int_equal(mkdir(out, 0700), 0);
}

static int setup(void **state)
{
	(void)state;
	dm_log_setup(stderr, DM_LOG_WARN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dm-test-etcd-member.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return dm_remove_tree(tmpdir, NULL);
}

/* The pid in DIR/etcd.pid, or 0 when there is none. */
static pid_t pid_in(const char *dir)
{
	char path[PATH_MAX + 16];
	struct dm_buf b = DM_BUF_INIT;
	long v = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, DM_DATA_ETCD_PID);
	if (dm_read_file(&b, path, 64, NULL) == 0 && b.data)
		v = strtol((const char *)b.data, NULL, 10);
	dm_buf_release(&b);
	return (pid_t)v;
}

/* Whether pid runs (and is no zombie: its command line is not empty). */
static bool runs(pid_t pid)
{
	char path[64];
	struct dm_buf b = DM_BUF_INIT;
	bool yes;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	yes = dm_read_file(&b, path, 1u << 20, NULL) == 0 && b.len > 0;
	dm_buf_release(&b);
	return yes;
}

/* Whether the member on client answers. */
static bool answers(int client)
{
	struct dm_kv_etcd_opts o = {.request_timeout_ms = 2000, .connect_timeout_ms = 500};
	struct dm_kv *kv = NULL;
	char url[64];

	dm_etcd_member_url(url, sizeof(url), client, false);
	if (dm_kv_open_etcd(&kv, url, &o, NULL))
		return false;
	dm_kv_free(kv);
	return true;
}

/* Waits up to 10 s until pid is gone. */
static bool ends(pid_t pid)
{
	for (int i = 0; i < 200 && runs(pid); i++)
		usleep(50000);
	return !runs(pid);
}

/* Makes data directory name (into dir) with a member on new ports
 * (*client, *peer), started by a process that then exits without stopping
 * it, as a dmd killed with SIGKILL does; the member's pid. */
static pid_t leave_member(char *dir, const char *name, int *client, int *peer)
{
	int status = 0;
	pid_t child, member;

	make_data_dir(dir, name);
	assert_int_equal(dm_etcd_member_pick_ports(client, peer, NULL), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct dm_etcd_member *m = NULL;

		_exit(dm_etcd_member_start(&m, dir, *client, *peer, NULL, NULL) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	member = pid_in(dir);
	assert_true(member > 0);
	assert_true(runs(member));
	return member;
}

static void test_ports(void **state)
{
	int low = 32768, high = 60999, client, peer;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	(void)state;
	if (dm_read_file(&b, "/proc/sys/net/ipv4/ip_local_port_range", 64, NULL) == 0 && b.data)
		assert_int_equal(sscanf((const char *)b.data, "%d %d", &low, &high), 2);
	dm_buf_release(&b);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(dm_etcd_member_pick_ports(&client, &peer, &err), 0);
		assert_int_not_equal(client, peer);
		assert_true(client >= 10000 && client <= 65535);
		assert_true(peer >= 10000 && peer <= 65535);
		assert_true(client < low || client > high);
		assert_true(peer < low || peer > high);
	}
}

static void test_start_answers_stop_ends(void **state)
{
	struct dm_etcd_member *m = NULL;
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	struct dm_err err;
	int client, peer;
	pid_t pid;

	(void)state;
	make_data_dir(dir, "one");
	assert_int_equal(dm_etcd_member_pick_ports(&client, &peer, &err), 0);
	assert_int_equal(dm_etcd_member_start(&m, dir, client, peer, NULL, &err), 0);
	assert_non_null(m);
	pid = pid_in(dir);
	assert_true(pid > 0 && runs(pid));
	assert_true(answers(client));
	snprintf(path, sizeof(path), "%s/%s", dir, DM_DATA_ETCD);
	assert_int_equal(access(path, F_OK), 0);
	dm_etcd_member_stop(m);
	assert_false(runs(pid));
	assert_int_equal(pid_in(dir), 0);
	assert_false(answers(client));
	dm_etcd_member_stop(NULL);
}

static void test_leftover_is_replaced_at_start(void **state)
{
	struct dm_etcd_member *m = NULL;
	char dir[PATH_MAX];
	struct dm_err err;
	int client, peer;
	pid_t old, new;

	(void)state;
	old = leave_member(dir, "replaced", &client, &peer);
	assert_true(answers(client));
	assert_int_equal(dm_etcd_member_start(&m, dir, client, peer, NULL, &err), 0);
	new = pid_in(dir);
	assert_true(new > 0 && new != old);
	assert_true(ends(old));
	assert_true(answers(client));
	dm_etcd_member_stop(m);
	assert_false(runs(new));
}

static void test_leftover_is_stopped(void **state)
{
	char dir[PATH_MAX];
	struct dm_err err;
	int client, peer;
	pid_t old, stopped;

	(void)state;
	old = leave_member(dir, "left", &client, &peer);
	assert_int_equal(dm_etcd_member_stop_leftover(&stopped, dir, &err), 0);
	assert_int_equal(stopped, old);
	assert_true(ends(old));
	assert_int_equal(pid_in(dir), 0);
	/* nothing left: nothing to do */
	assert_int_equal(dm_etcd_member_stop_leftover(&stopped, dir, &err), 0);
	assert_int_equal(stopped, 0);
}

static void test_pid_file_of_another_program(void **state)
{
	char dir[PATH_MAX];
	char path[PATH_MAX + 16], line[32];
	struct dm_err err;
	pid_t other, stopped;
	int status;

	(void)state;
	make_data_dir(dir, "other");
	other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, DM_DATA_ETCD_PID);
	snprintf(line, sizeof(line), "%ld\n", (long)other);
	assert_int_equal(dm_write_file_atomic(path, line, strlen(line), 0644, &err), 0);
	assert_int_equal(dm_etcd_member_stop_leftover(&stopped, dir, &err), 0);
	assert_int_equal(stopped, 0);
	assert_int_equal(waitpid(other, &status, WNOHANG), 0); /* still runs */
	kill(other, SIGKILL);
	assert_int_equal(waitpid(other, &status, 0), other);
}

static void test_port_taken(void **state)
{
	struct dm_etcd_member *m = NULL;
	char dir[PATH_MAX];
	struct sockaddr_in a;
	struct dm_err err;
	int client, peer, fd, one = 1;

	(void)state;
	make_data_dir(dir, "taken");
	assert_int_equal(dm_etcd_member_pick_ports(&client, &peer, &err), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)client);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(dm_etcd_member_start(&m, dir, client, peer, NULL, &err), DM_EUNAVAILABLE);
	assert_null(m);
	assert_non_null(strstr(err.msg, "exited with status"));
	assert_non_null(strstr(err.msg, "address already in use"));
	assert_int_equal(pid_in(dir), 0);
	close(fd);
}

/* Opens the member on client over url's scheme with opts: its code. */
static int open_with(int client, bool tls, const struct dm_kv_etcd_opts *opts)
{
	struct dm_kv *kv = NULL;
	char url[64];
	int rc;

	dm_etcd_member_url(url, sizeof(url), client, tls);
	rc = dm_kv_open_etcd(&kv, url, opts, NULL);
	dm_kv_free(kv);
	return rc;
}

/* A member made with TLS and a user: https only, with its CA; nobody in
 * without the user's password; the same once it starts again (its
 * authentication was turned on at the first start and stays on). */
static void test_tls_and_auth(void **state)
{
	struct dm_kv_etcd_opts o = {.request_timeout_ms = 2000, .connect_timeout_ms = 500};
	struct dm_etcd_access_config c;
	struct dm_etcd_access a;
	struct dm_etcd_member *m = NULL;
	char dir[PATH_MAX];
	struct dm_err err;
	int client, peer;

	(void)state;
	make_data_dir(dir, "tls");
	assert_int_equal(dm_etcd_access_init_local(dir, &c, &err), 0);
	assert_true(c.ca);
	assert_string_equal(c.user, DM_ETCD_LOCAL_USER);
	assert_int_equal(dm_etcd_access_load(&a, dir, &c, &err), 0);
	assert_true(strlen(a.password) >= 32);
	assert_int_equal(dm_etcd_member_pick_ports(&client, &peer, &err), 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(dm_etcd_member_start(&m, dir, client, peer, &a, &err), 0);
		/* no plain HTTP, no server it cannot check, no way in without the user */
		assert_int_not_equal(open_with(client, false, &o), 0);
		assert_int_not_equal(open_with(client, true, &o), 0);
		o.ca_file = a.ca;
		assert_int_equal(open_with(client, true, &o), DM_EPERM);
		o.user = a.user;
		o.password = "not-the-password";
		assert_int_equal(open_with(client, true, &o), DM_EPERM);
		dm_etcd_access_kv_opts(&o, &a);
		assert_int_equal(open_with(client, true, &o), 0);
		memset(&o, 0, sizeof(o));
		o.request_timeout_ms = 2000;
		o.connect_timeout_ms = 500;
		dm_etcd_member_stop(m);
		m = NULL;
	}
	dm_etcd_access_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_start_answers_stop_ends),
		cmocka_unit_test(test_leftover_is_replaced_at_start),
		cmocka_unit_test(test_leftover_is_stopped),
		cmocka_unit_test(test_pid_file_of_another_program),
		cmocka_unit_test(test_port_taken),
		cmocka_unit_test(test_tls_and_auth),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

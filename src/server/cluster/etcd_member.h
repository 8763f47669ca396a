/*
 * etcd_member.h - the single-member etcd that a dmd runs itself when its
 * cluster was made without etcd endpoints (`dmd init --kv etcd` alone;
 * docs/internals/cluster.md, "A local etcd").
 *
 * The member is the first etcd in PATH (Debian's /usr/bin/etcd, package
 * etcd-server), run as a child of dmd with its data in DIR/etcd, its output
 * appended to DIR/etcd.log and its pid in DIR/etcd.pid, listening on
 * 127.0.0.1 only: its client port serves the KV (http://127.0.0.1:PORT),
 * its peer port nothing but itself. The ports are chosen once, at init,
 * and kept in config.json.
 *
 * Who starts and stops it: `dmd init` for the time it writes the new
 * cluster's records, then the dmd that serves the data directory (it holds
 * the pid lock, daemon.h) from before it opens the KV until after it closed
 * it. A dmd that dies (SIGKILL) leaves its member running, so nodes that
 * use it keep their KV; the next `dmd start` stops that member and starts
 * its own, and `dmd stop` stops it too.
 */
#ifndef DM_SERVER_CLUSTER_ETCD_MEMBER_H
#define DM_SERVER_CLUSTER_ETCD_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

struct dm_etcd_member;
struct dm_etcd_access;

/* The program the member runs. */
#define DM_ETCD_PROGRAM "etcd"

/* What a member keeps in the data directory: its data, its pid while it
 * runs, its output. */
#define DM_DATA_ETCD     "etcd"
#define DM_DATA_ETCD_PID "etcd.pid"
#define DM_DATA_ETCD_LOG "etcd.log"

/* Whether an etcd program is there to run: DM_EUNSUPPORTED saying how to
 * get one, or to give endpoints instead, when not. */
int dm_etcd_member_check(struct dm_err *err);

/* Two distinct TCP ports that are free on 127.0.0.1 now, outside the
 * kernel's range of ephemeral ports (so that an outgoing connection does
 * not hold one when the member starts again later). */
int dm_etcd_member_pick_ports(int *client_out, int *peer_out, struct dm_err *err);

/* The member's client URL, "https://127.0.0.1:PORT" (http:// for a member
 * made before TLS), into out. */
void dm_etcd_member_url(char *out, size_t size, int client_port, bool tls);

/*
 * Starts data_dir's member on these ports and waits until it answers (a
 * linearizable read, so it has elected itself leader), at most 30 s. With
 * access (etcd_access.h: made by dm_etcd_access_init_local), it speaks
 * TLS on its client and peer URLs with the certificate in data_dir, and
 * has authentication on, access's user its root: turned on at its first
 * start. access NULL: a member made before TLS, plain HTTP. A
 * member a dead dmd left running on data_dir is stopped first. On failure
 * nothing runs any more, and err says whether the member exited or did not
 * answer, with the end of what it logged. The caller must be the only one
 * managing data_dir's member (see above).
 */
int dm_etcd_member_start(struct dm_etcd_member **out, const char *data_dir, int client_port,
			 int peer_port, const struct dm_etcd_access *access, struct dm_err *err);

/* Stops the member (SIGTERM; SIGKILL when it has not exited within 5 s),
 * removes DIR/etcd.pid and frees m; accepts NULL. */
void dm_etcd_member_stop(struct dm_etcd_member *m);

/* Stops a member that a dmd which died left running on data_dir, when
 * there is one: *pid_out is its pid, or 0 when none ran. */
int dm_etcd_member_stop_leftover(pid_t *pid_out, const char *data_dir, struct dm_err *err);

#endif

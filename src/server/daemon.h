/*
 * daemon.h - running dmd as a daemon: the double fork with a readiness
 * handshake, the pid file that makes a data directory's dmd unique, the
 * signals that stop it, and `dmd stop`.
 *
 * The handshake: dm_daemon_detach forks twice and returns in two
 * processes. The caller's process waits on a pipe until the daemon calls
 * dm_daemon_ready (it serves) or dm_daemon_fail (with its error, which the
 * caller's process then reports as its own), or exits without a word.
 */
#ifndef DM_SERVER_DAEMON_H
#define DM_SERVER_DAEMON_H

#include <signal.h>
#include <sys/types.h>

#include "util/err.h"

struct dm_daemon;
struct dm_pidfile;

/*
 * Detaches from the terminal: fork, setsid, fork. Returns 0 in the daemon
 * with *out set (its end of the handshake), stdin from /dev/null, the
 * current directory "/" and no inherited descriptors but 0, 1 and 2.
 * Returns in the caller's process with *out NULL once the daemon has
 * answered: 0 with *pid_out its pid when it is ready, or its error (code
 * and message), or DM_EUNAVAILABLE when it exited without answering
 * (log_path names where to look) or DM_ETIMEOUT after timeout_ms.
 */
int dm_daemon_detach(struct dm_daemon **out, pid_t *pid_out, const char *log_path, int timeout_ms,
		     struct dm_err *err);
/* In the daemon: tell the waiting process that we serve; frees d. */
void dm_daemon_ready(struct dm_daemon *d);
/* In the daemon: hand err to the waiting process; frees d. Accepts NULL d. */
void dm_daemon_fail(struct dm_daemon *d, const struct dm_err *err);


/* Points stdout and stderr at log_path (appending, created mode 0600). */
int dm_daemon_redirect(const char *log_path, struct dm_err *err);

/*
 * Creates and flocks DIR/dmd.pid and writes our pid into it. DM_EBUSY
 * "dmd is already running on DIR (pid N)" while another process holds it.
 * The lock lives as long as the process or until dm_pidfile_release.
 */
int dm_pidfile_lock(struct dm_pidfile **out, const char *data_dir, struct dm_err *err);
/* Removes the pid file, then drops the lock; accepts NULL. */
void dm_pidfile_release(struct dm_pidfile *p);

/*
 * `dmd stop`: sends SIGTERM to the dmd holding DIR/dmd.pid and waits up to
 * timeout_ms for it to exit (to drop the lock). *pid_out is its pid, or 0
 * when no dmd was running (not an error; a stale pid file is removed).
 * DM_ETIMEOUT "dmd (pid N) did not stop within S s".
 */
int dm_daemon_stop(pid_t *pid_out, const char *data_dir, int timeout_ms, struct dm_err *err);

/* Blocks SIGTERM and SIGINT (into *set) in the calling thread, and so in
 * every thread started after, and ignores SIGPIPE. Call before any thread
 * exists. */
void dm_daemon_block_signals(sigset_t *set);
/* Waits for one of the signals of set; returns its number. */
int dm_daemon_wait_signal(const sigset_t *set);

#endif

/*
 * fsutil.h - small file-system helpers: full reads and writes that retry on
 * EINTR and short counts, bounded whole-file reads, directories made with
 * their parents, directory streams of borrowed fds, and crash-safe
 * replacement of a file (write a temporary, fsync it, rename it over the
 * old one, fsync the directory).
 */
#ifndef DM_UTIL_FSUTIL_H
#define DM_UTIL_FSUTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct dm_err;
struct dm_buf;

/* 0, or -1 with errno set. */
int dm_write_all(int fd, const void *data, size_t len);
int dm_pwrite_all(int fd, const void *data, size_t len, off_t off);
/* Reads exactly len bytes at off; -1 with errno (EIO for a short file). */
int dm_pread_all(int fd, void *data, size_t len, off_t off);

/* Reads a whole file into out, failing with DM_ETOOBIG past max bytes. */
int dm_read_file(struct dm_buf *out, const char *path, size_t max, struct dm_err *err);
/* Replaces path with data atomically and durably, with the given mode. */
int dm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct dm_err *err);
/* dm_write_file_atomic_flags: no fsync of the file nor of its directory.
 * Still atomic (a rename), but after a crash path may hold the old content,
 * the new, or a torn file: for data the reader checks and can do without. */
#define DM_WRITE_NO_SYNC 1u
/* As dm_write_file_atomic, with DM_WRITE_* flags. */
int dm_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode,
			       unsigned flags, struct dm_err *err);
/* mkdir -p with mode for each directory made. */
int dm_mkdir_p(const char *path, mode_t mode, struct dm_err *err);
/* fsync of a directory, so that a rename or create inside it is durable. */
int dm_fsync_dir(const char *path, struct dm_err *err);
/* rm -rf that never follows symlinks and stays on path's file system. */
int dm_remove_tree(const char *path, struct dm_err *err);
/* The same for the entry name of the directory open on parent (a file is
 * unlinked; a missing one is fine), staying on parent's file system. */
int dm_remove_tree_at(int parent, const char *name, struct dm_err *err);
/* A directory stream of the directory open on fd, which stays the
 * caller's: the stream reads a duplicate of it, which closedir closes.
 * NULL with errno when it cannot be made. */
DIR *dm_opendir_dup(int fd);

/* Monotonic and wall clocks in nanoseconds. */
int64_t dm_now_monotonic_ns(void);
int64_t dm_now_realtime_ns(void);

/* Closes every descriptor from `from` up: in a fork child before exec, so
 * that a program dmd runs inherits nothing of dmd's. */
void dm_close_from(int from);

/* Whether a process accepts connections on the unix socket at path (a
 * socket file there that nobody serves is stale). */
bool dm_unix_socket_served(const char *path);

#endif

/*
 * datadir.h - a dmd's data directory: its layout, its config.json, and
 * `dmd init`, which makes one.
 *
 * Layout of a data directory (DESIGN.md §2):
 *     DIR/config.json      port, node id, engine, creation time (dmd init)
 *     DIR/admin-api-key    the admin user's API key, mode 0400
 *     DIR/kv/              the embedded KV (LMDB)
 *     DIR/store/           the object store
 *     DIR/dots/            the engine's working copies
 *     DIR/dmd.pid          pid of the running dmd, flock'ed while it runs
 *     DIR/dmd.sock         the API on a unix socket, mode 0600
 *     DIR/dmd.log          the daemon's log
 *     DIR/ca.pem           the CA that signs this node's certificate (the
 *                          cluster's; 0644), DIR/ca-key.pem its key (0600,
 *                          only on the node that made the cluster)
 *     DIR/tls.pem          this node's certificate chain, DIR/tls-key.pem
 *                          its key (0600): what the TCP port serves
 *     DIR/uploads/         bodies of dotmesh's S3 PUTs while they arrive,
 *                          before their dot's job places them (0700; emptied
 *                          when dmd starts)
 *     DIR/etcd/            a local etcd member's data (kv etcd without
 *                          endpoints; cluster/etcd_member.h), DIR/etcd.pid
 *                          its pid while it runs, DIR/etcd.log its output
 *
 * A data directory is initialised exactly when its config.json exists;
 * init writes it last, so a failed init never leaves a directory that
 * looks initialised.
 */
#ifndef DM_SERVER_DATADIR_H
#define DM_SERVER_DATADIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/cluster/cluster.h"
#include "server/cluster/etcd_access.h"
#include "util/err.h"
#include "util/id.h"

struct dm_etcd_member;
struct dm_kv;

#define DM_DATA_CONFIG     "config.json"
#define DM_DATA_ADMIN_KEY  "admin-api-key"
#define DM_DATA_KV         "kv"
#define DM_DATA_STORE      "store"
#define DM_DATA_DOTS       "dots"
#define DM_DATA_PID        "dmd.pid"
#define DM_DATA_SOCKET     "dmd.sock"
#define DM_DATA_LOG        "dmd.log"
#define DM_DATA_POOL       "pool"     /* a loop pool's mount point (btrfs) */
#define DM_DATA_POOL_IMAGE "pool.img" /* a loop pool's file (btrfs) */
#define DM_DATA_FREEZES    "freezes"  /* journals of containers frozen for a commit */
#define DM_DATA_UPLOADS    "uploads"  /* S3 PUT bodies on their way in (api/s3_http.c) */
#define DM_DATA_CA         "ca.pem"
#define DM_DATA_CA_KEY     "ca-key.pem"
#define DM_DATA_TLS_CERT   "tls.pem"
#define DM_DATA_TLS_KEY    "tls-key.pem"

/*
 * Modes of what init creates. The data directory and dots/ may be traversed
 * but not listed by anyone (0711): a database in a working copy runs as its
 * own user (PostgreSQL refuses root), which must reach DIR/dots/<id>/<branch>/wc
 * by path. What holds secrets or history stays the owner's alone: kv/ and
 * store/ 0700, the admin key 0400, the socket 0600, the log 0600.
 */
#define DM_DATADIR_TRAVERSE_MODE 0711
#define DM_DATADIR_PRIVATE_MODE  0700

/* What config.json holds. */
struct dm_datadir_config {
	int port;
	char node_id[DM_UUID_LEN + 1];
	char engine[32];
	/* btrfs: an existing mount (pool_dir, absolute), or a loop-mounted file
	 * DIR/pool.img (pool_size > 0) mounted at DIR/pool; neither for dir */
	char pool_dir[PATH_MAX];
	uint64_t pool_size;
	char kv[8];                                    /* "lmdb" or "etcd" */
	char etcd_endpoints[DM_CLUSTER_ENDPOINTS_MAX]; /* etcd: "http://h:p,..." */
	char cluster_id[DM_UUID_LEN + 1];
	char advertise[DM_CLUSTER_ADDRESS_MAX]; /* where other nodes reach us, or "" */
	/* a local etcd member's ports ("etcd_local"), or 0: etcd is elsewhere;
	 * etcd_local_tls: it speaks TLS with authentication on (every member
	 * made since; older ones stay plain HTTP on loopback) */
	int etcd_client_port, etcd_peer_port;
	bool etcd_local_tls;
	/* how etcd is reached: its CA, a client certificate, a user
	 * ("etcd_client"; the files in DIR: cluster/etcd_access.h) */
	struct dm_etcd_access_config etcd_access;
	/* "tls": how the TCP port speaks: DM_TLS_SELF (dm's own CA and
	 * certificate in the data directory), DM_TLS_FILES (the operator's, at
	 * tls_cert, tls_key and maybe tls_ca) or DM_TLS_OFF (--insecure-http) */
	char tls[8];
	char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_ca[PATH_MAX];
};

#define DM_TLS_SELF  "self"
#define DM_TLS_FILES "files"
#define DM_TLS_OFF   "off"

/* "DIR/NAME" into out (size bytes); DM_ETOOBIG when it does not fit. */
int dm_datadir_path(char *out, size_t size, const char *dir, const char *name, struct dm_err *err);

/* Reads DIR/config.json; DM_ECORRUPT naming the file when it is not valid. */
int dm_datadir_read_config(struct dm_datadir_config *out, const char *dir, struct dm_err *err);

/* Where the engine keeps working copies: DIR/dots for the dir engine; for
 * btrfs the pool's dots/ (DIR/dots is a symlink to it). */
int dm_datadir_dots_path(char *out, size_t size, const char *dir, const struct dm_datadir_config *c,
			 struct dm_err *err);

/* Opens the KV c names: the embedded one in DIR/kv, or etcd, reached with
 * the files and credentials DIR keeps for it (loaded into *access, which
 * the caller releases, whether this failed or not), whose local member
 * (when c has one) is started first, into *member: the caller stops it
 * after it freed the KV, whether this failed or not. */
int dm_datadir_open_kv(struct dm_kv **out, struct dm_etcd_member **member,
		       struct dm_etcd_access *access, const char *dir,
		       const struct dm_datadir_config *c, struct dm_err *err);

/*
 * `dmd init`: makes data_dir an initialised data directory (creating it, or
 * using it when empty) with its config (port; 0: DM_DEFAULT_PORT), KV,
 * store and the admin user, whose fresh API key goes to key_out
 * (DM_API_KEY_LEN + 1 bytes) and to DIR/admin-api-key. DM_EEXISTS for a
 * directory already initialised or not empty; nothing is left behind on
 * failure.
 */
int dm_datadir_init(char *key_out, const char *data_dir, int port, struct dm_err *err);

/*
 * The same with the engine: "dir" (NULL: the default) or "btrfs", which
 * needs pool_dir (an existing btrfs mount; its dots/ holds the working
 * copies) or pool_size (DIR/pool.img of that many bytes, formatted and
 * loop-mounted at DIR/pool; needs root, btrfs and loop devices). What the
 * machine lacks for a pool is said before anything is made. DIR/dots is
 * then a symlink to the pool's dots/.
 */
struct dm_datadir_init_opts {
	int port;
	const char *engine;
	const char *pool_dir;
	uint64_t pool_size;
	const char *kv; /* "lmdb" (NULL: the default) or "etcd" */
	/* kv etcd: "http://h:p[,...]"; NULL or "": a local etcd member that
	 * dmd runs in DIR/etcd (cluster/etcd_member.h) */
	const char *etcd_endpoints;
	const char *advertise; /* the URL other nodes reach this one at, or NULL */
	/* TLS on the TCP port: the operator's certificate chain and key files
	 * (and the CA that signed them, for clients to pin), or NULL: a CA and
	 * a certificate made now (certs.h); insecure_http: plain HTTP, only
	 * when this node is reached on a loopback address */
	const char *tls_cert, *tls_key, *tls_ca;
	bool insecure_http;
	/* kv etcd with endpoints: how to reach them (TLS files, a user and its
	 * password's file); none of it for a local member, which makes its own */
	struct dm_etcd_access_opts etcd;
	/* joining a cluster: its token (kv etcd, endpoints, the CA and who
	 * signs this node's certificate come from it; key_out is ""), or NULL
	 * to make a new cluster */
	const struct dm_cluster_token *join;
};
int dm_datadir_init_opts(char *key_out, const char *data_dir, const struct dm_datadir_init_opts *o,
			 struct dm_err *err);

/* Unmounts data_dir's loop pool when it has one and it is mounted (after
 * its dmd stopped, or died); its loop device is freed with it. */
int dm_datadir_release_pool(const char *data_dir, struct dm_err *err);

/* 0 when data_dir is an initialised data directory; DM_ENOTFOUND with a
 * message that says to run `dmd init` otherwise. */
int dm_datadir_check(const char *data_dir, struct dm_err *err);

/* Reads the port of an initialised data directory's config. */
int dm_datadir_port(int *out, const char *data_dir, struct dm_err *err);

/*
 * `dmd restore`: writes the cluster state of the backup in file (`dm
 * cluster backup`; cluster/backup.h) into the KV of data_dir, whose dmd
 * must not run (its pid file is locked meanwhile), with its store to check
 * that the dots' heads are there. What it did goes to report, in lines.
 */
#define DM_BACKUP_MAX (256u << 20)
int dm_datadir_restore(const char *data_dir, const char *file, FILE *report, struct dm_err *err);

#endif

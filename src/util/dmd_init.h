/*
 * dmd_init.h - the options of `dmd init` that `dm cluster init` passes
 * through, written once: dmd's parser (src/server/main.c) and the CLI
 * (src/cli/cmd_cluster.c) both make their getopt_long entries, the
 * option names in their messages, the arguments dm gives dmd and the
 * synopsis in their help from the table below.
 *
 * A header only, in util because util is the one module both programs
 * use: it declares no symbol, so including it links nothing, and the CLI
 * stays free of server code. --join is dmd's alone (dm cluster join sets
 * it from its token) and is not in the table.
 *
 * Invariant: an option of the table takes a value (required_argument) or
 * is a flag (no_argument), as its row says, and its getopt_long value is
 * DM_DMD_INIT_OPT(ID), from DM_DMD_INIT_OPT_BASE up, which neither program
 * uses for anything else.
 */
#ifndef DM_UTIL_DMD_INIT_H
#define DM_UTIL_DMD_INIT_H

#include <getopt.h>
#include <stddef.h>

/* X(ID, "name", has_arg) for each option, in the order dm passes them to
 * dmd. */
#define DM_DMD_INIT_OPTIONS(X)                                                                     \
	X(ENGINE, "engine", required_argument)                                                     \
	X(POOL_DIR, "pool-dir", required_argument)                                                 \
	X(POOL_SIZE, "pool-size", required_argument)                                               \
	X(KV, "kv", required_argument)                                                             \
	X(ETCD_ENDPOINTS, "etcd-endpoints", required_argument)                                     \
	X(ETCD_CA, "etcd-ca", required_argument)                                                   \
	X(ETCD_CERT, "etcd-cert", required_argument)                                               \
	X(ETCD_KEY, "etcd-key", required_argument)                                                 \
	X(ETCD_USER, "etcd-user", required_argument)                                               \
	X(ETCD_PASSWORD_FILE, "etcd-password-file", required_argument)                             \
	X(ADVERTISE, "advertise", required_argument)                                               \
	X(TLS_CERT, "tls-cert", required_argument)                                                 \
	X(TLS_KEY, "tls-key", required_argument)                                                   \
	X(TLS_CA, "tls-ca", required_argument)                                                     \
	X(INSECURE_HTTP, "insecure-http", no_argument)

#define DM_DMD_INIT_ENUM_(id, name, arg) DM_DMD_INIT_##id,
/* Index of each option in the table; DM_DMD_INIT_N of them. */
enum dm_dmd_init_opt { DM_DMD_INIT_OPTIONS(DM_DMD_INIT_ENUM_) DM_DMD_INIT_N };

#define DM_DMD_INIT_OPT_BASE 1300
/* getopt_long's value for option ID (e.g. DM_DMD_INIT_OPT(KV)). */
#define DM_DMD_INIT_OPT(id) (DM_DMD_INIT_OPT_BASE + DM_DMD_INIT_##id)

#define DM_DMD_INIT_GETOPT_(id, name, arg) {name, arg, NULL, DM_DMD_INIT_OPT(id)},
/* The table's entries of a struct option array. */
#define DM_DMD_INIT_GETOPT DM_DMD_INIT_OPTIONS(DM_DMD_INIT_GETOPT_)

/* The synopsis of the options, for the usage lines of both programs:
 * "ENGINE [KV | ...] ADVERTISE", each program adding what is its own. */
#define DM_DMD_INIT_ENGINE_USAGE                                                                   \
	"[--engine dir | --engine btrfs (--pool-dir PATH | --pool-size SIZE)]"
#define DM_DMD_INIT_KV_USAGE                                                                       \
	"--kv lmdb | --kv etcd [--etcd-endpoints URL[,URL...] [--etcd-ca FILE] [--etcd-cert FILE " \
	"--etcd-key FILE] [--etcd-user NAME [--etcd-password-file FILE]]]"
/* The etcd options a joining node may give (an etcd of its own reach). */
#define DM_DMD_INIT_ETCD_USAGE                                                                     \
	"[--etcd-ca FILE] [--etcd-cert FILE --etcd-key FILE] [--etcd-user NAME "                   \
	"[--etcd-password-file FILE]]"
#define DM_DMD_INIT_ADVERTISE_USAGE "[--advertise URL]"
#define DM_DMD_INIT_TLS_USAGE       "[--tls-cert FILE --tls-key FILE [--tls-ca FILE] | --insecure-http]"

/* The option of getopt_long value c as "name" (without dashes), or NULL
 * when c is not one of the table's. */
static inline const char *dm_dmd_init_name(int c)
{
#define DM_DMD_INIT_NAME_(id, name, arg) name,
	static const char *const names[DM_DMD_INIT_N] = {DM_DMD_INIT_OPTIONS(DM_DMD_INIT_NAME_)};
#undef DM_DMD_INIT_NAME_

	if (c < DM_DMD_INIT_OPT_BASE || c >= DM_DMD_INIT_OPT_BASE + DM_DMD_INIT_N)
		return NULL;
	return names[c - DM_DMD_INIT_OPT_BASE];
}

/* Option i of the table (0 <= i < DM_DMD_INIT_N) as an argument: "--name". */
static inline const char *dm_dmd_init_flag(int i)
{
#define DM_DMD_INIT_FLAG_(id, name, arg) "--" name,
	static const char *const flags[DM_DMD_INIT_N] = {DM_DMD_INIT_OPTIONS(DM_DMD_INIT_FLAG_)};
#undef DM_DMD_INIT_FLAG_

	return i >= 0 && i < DM_DMD_INIT_N ? flags[i] : NULL;
}

/* Whether option i of the table takes a value (else it is a flag). */
static inline int dm_dmd_init_takes_value(int i)
{
#define DM_DMD_INIT_ARG_(id, name, arg) arg == required_argument,
	static const int takes[DM_DMD_INIT_N] = {DM_DMD_INIT_OPTIONS(DM_DMD_INIT_ARG_)};
#undef DM_DMD_INIT_ARG_

	return i >= 0 && i < DM_DMD_INIT_N && takes[i];
}

#endif

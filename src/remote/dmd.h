/*
 * dmd.h - the remote that is another dmd: its /objects endpoints over
 * HTTP with libcurl (docs/internals/transfer.md).
 *
 * Every call ends: connecting gives up after DM_REMOTE_CONNECT_TIMEOUT
 * seconds, a connection that moves no byte for DM_REMOTE_STALL_TIMEOUT is
 * dropped (DM_EUNAVAILABLE), HTTP 401 is DM_EPERM. Uploads are pipelined:
 * put_add gathers records into batches of about DM_REMOTE_BATCH bytes and
 * keeps up to DM_REMOTE_INFLIGHT `put` requests in flight (curl multi).
 */
#ifndef DM_REMOTE_DMD_H
#define DM_REMOTE_DMD_H

#include "remote/remote.h"

#define DM_REMOTE_VERSION         1           /* the transfer version this dm speaks */
#define DM_REMOTE_CONNECT_TIMEOUT 3           /* seconds */
#define DM_REMOTE_STALL_TIMEOUT   30          /* seconds without a byte moving */
#define DM_REMOTE_HELLO_TIMEOUT   5           /* seconds for the first request (versions) */
#define DM_REMOTE_UPDATE_TIMEOUT  3700        /* seconds: a dot may take long to apply */
#define DM_REMOTE_BATCH           (8u << 20)  /* bytes per put request, about */
#define DM_REMOTE_INFLIGHT        4           /* put requests in flight */
#define DM_REMOTE_JSON_MAX        (64u << 20) /* largest JSON answer (refs of long histories) */

/* Opens a connection to the dmd at addr (nothing is sent yet). */
int dm_remote_dmd_open(struct dm_remote_conn **out, const struct dm_remote_addr *addr,
		       struct dm_err *err);

#endif

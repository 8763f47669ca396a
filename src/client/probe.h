/*
 * probe.h - first contact with a dm server: which CA its certificate chain
 * ends with (and that CA's fingerprint), or that it serves plain HTTP, so
 * that `dm remote add` can check it against what the user knows before it
 * trusts anything (docs/internals/security.md).
 */
#ifndef DM_CLIENT_PROBE_H
#define DM_CLIENT_PROBE_H

#include <stdbool.h>

#include "util/buf.h"
#include "util/tls.h"

struct dm_err;

struct dm_client_probe {
	bool plain;          /* it answered plain HTTP (no TLS) */
	struct dm_buf ca;    /* else: the last certificate of its chain, PEM, NUL-ended */
	char fingerprint[DM_TLS_FINGERPRINT_LEN + 1]; /* ca's */
};

/* Connects to HOST:PORT and reads what it serves. DM_EUNAVAILABLE when it
 * cannot be reached; DM_EPROTO when it speaks neither. */
int dm_client_probe(struct dm_client_probe *out, const char *host, int port, struct dm_err *err);
void dm_client_probe_release(struct dm_client_probe *p);

#endif

/*
 * hash.c - SHA-256 through OpenSSL's EVP interface.
 *
 * Invariant: a struct dm_hasher always holds an initialised digest context,
 * ready for update after new, reset or final.
 */
#include "util/hash.h"
#include "util/buf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

struct dm_hasher {
	EVP_MD_CTX *ctx;
};

static void init_or_die(EVP_MD_CTX *ctx)
{
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		fprintf(stderr, "fatal: cannot initialise SHA-256\n");
		abort();
	}
}

struct dm_hasher *dm_hasher_new(void)
{
	struct dm_hasher *h = dm_xmalloc(sizeof(*h));

	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx) {
		fprintf(stderr, "fatal: out of memory for SHA-256 context\n");
		abort();
	}
	init_or_die(h->ctx);
	return h;
}

void dm_hasher_free(struct dm_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void dm_hasher_reset(struct dm_hasher *h)
{
	init_or_die(h->ctx);
}

void dm_hasher_update(struct dm_hasher *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->ctx, data, len);
}

void dm_hasher_final(struct dm_hasher *h, dm_oid *out)
{
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, out->b, &n);
	init_or_die(h->ctx);
}

void dm_hash(dm_oid *out, const void *data, size_t len)
{
	unsigned int n = 0;

	EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL);
}

void dm_oid_hex(char *out, const dm_oid *id)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < DM_OID_RAWSZ; i++) {
		out[2 * i] = digits[id->b[i] >> 4];
		out[2 * i + 1] = digits[id->b[i] & 15];
	}
	out[DM_OID_HEXSZ] = '\0';
}

int dm_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dm_oid_from_hex(dm_oid *out, const char *hex, size_t len)
{
	if (len != DM_OID_HEXSZ)
		return -1;
	for (int i = 0; i < DM_OID_RAWSZ; i++) {
		int hi = dm_hex_digit(hex[2 * i]), lo = dm_hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out->b[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int dm_oid_cmp(const dm_oid *a, const dm_oid *b)
{
	return memcmp(a->b, b->b, DM_OID_RAWSZ);
}

bool dm_oid_is_zero(const dm_oid *id)
{
	for (int i = 0; i < DM_OID_RAWSZ; i++)
		if (id->b[i])
			return false;
	return true;
}

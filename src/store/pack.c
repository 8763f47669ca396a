/*
 * pack.c - reading and writing pack headers and records.
 *
 * Invariant: nothing read from a pack is used before it is bounds-checked:
 * record lengths against the kind's limit and against the compressed-size
 * bound, before any allocation.
 */
#include "store/pack.h"
#include "store/chunker.h"
#include "store/object.h"
#include "util/err.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "util/banned.h"

static const unsigned char magic[8] = {'D', 'M', 'P', 'A', 'C', 'K', '\r', '\n'};

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t dm_pack_max_raw(int kind)
{
	return kind == DM_OBJ_CHUNK ? DM_CHUNK_MAX_LIMIT : DM_OBJ_MAX_SIZE;
}

int dm_pack_create(int *out, const char *path, struct dm_err *err)
{
	unsigned char hdr[DM_PACK_HDR_LEN] = {0};
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot create pack '%s'", path);
	memcpy(hdr, magic, sizeof(magic));
	put32(hdr + 8, DM_PACK_VERSION);
	if (dm_write_all(fd, hdr, sizeof(hdr)) < 0) {
		int rc = dm_err_errno(err, errno, "cannot write pack '%s'", path);

		close(fd);
		unlink(path);
		return rc;
	}
	*out = fd;
	return 0;
}

int dm_pack_open(int *out, const char *path, int flags, struct dm_err *err)
{
	unsigned char hdr[DM_PACK_HDR_LEN];
	int fd;

	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return dm_err_errno(err, errno, "cannot open pack '%s'", path);
	if (dm_pread_all(fd, hdr, sizeof(hdr), 0) < 0 || memcmp(hdr, magic, sizeof(magic))) {
		close(fd);
		return dm_err_set(err, DM_ECORRUPT, "'%s' is not a dm pack", path);
	}
	if (get32(hdr + 8) != DM_PACK_VERSION) {
		close(fd);
		return dm_err_set(err, DM_EUNSUPPORTED, "pack '%s' has format version %u", path,
				  get32(hdr + 8));
	}
	*out = fd;
	return 0;
}

void dm_pack_rec_encode(unsigned char out[DM_PACK_REC_LEN], const struct dm_pack_rec *rec)
{
	out[0] = rec->kind;
	out[1] = rec->flags;
	out[2] = 0;
	out[3] = 0;
	put32(out + 4, rec->raw_len);
	put32(out + 8, rec->stored_len);
	memcpy(out + 12, rec->id.b, DM_OID_RAWSZ);
}

int dm_pack_rec_decode(struct dm_pack_rec *out, const unsigned char hdr[DM_PACK_REC_LEN],
		       struct dm_err *err)
{
	out->kind = hdr[0];
	out->flags = hdr[1];
	out->raw_len = get32(hdr + 4);
	out->stored_len = get32(hdr + 8);
	memcpy(out->id.b, hdr + 12, DM_OID_RAWSZ);
	if (out->kind < DM_OBJ_CHUNK || out->kind > DM_OBJ_COMMIT)
		return dm_err_set(err, DM_ECORRUPT, "corrupt pack record: unknown kind %u",
				  out->kind);
	if ((out->flags & ~DM_PACK_F_ZSTD) || hdr[2] || hdr[3])
		return dm_err_set(err, DM_ECORRUPT, "corrupt pack record: unknown flags");
	if (out->raw_len > dm_pack_max_raw(out->kind))
		return dm_err_set(err, DM_ECORRUPT, "corrupt pack record: %s of %u bytes",
				  dm_obj_kind_name(out->kind), out->raw_len);
	if (out->flags & DM_PACK_F_ZSTD) {
		if (out->stored_len > ZSTD_compressBound(out->raw_len))
			return dm_err_set(err, DM_ECORRUPT,
					  "corrupt pack record: compressed size %u too large",
					  out->stored_len);
	} else if (out->stored_len != out->raw_len) {
		return dm_err_set(err, DM_ECORRUPT,
				  "corrupt pack record: stored size %u differs from size %u",
				  out->stored_len, out->raw_len);
	}
	return 0;
}

int dm_pack_read_header(int fd, uint64_t off, struct dm_pack_rec *rec, struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];

	if (dm_pread_all(fd, hdr, sizeof(hdr), (off_t)off) < 0)
		return dm_err_set(err, DM_ECORRUPT, "cannot read pack record at %llu: %s",
				  (unsigned long long)off,
				  errno == EIO ? "pack is truncated" : strerror(errno));
	return dm_pack_rec_decode(rec, hdr, err);
}

int dm_pack_read(int fd, uint64_t off, struct dm_pack_rec *rec, struct dm_buf *stored,
		 struct dm_err *err)
{
	int rc = dm_pack_read_header(fd, off, rec, err);

	if (rc)
		return rc;
	dm_buf_reset(stored);
	if (dm_buf_grow(stored, rec->stored_len))
		return dm_err_set(err, DM_ENOMEM, "out of memory reading a pack record");
	if (dm_pread_all(fd, stored->data, rec->stored_len, (off_t)(off + DM_PACK_REC_LEN)) < 0)
		return dm_err_set(err, DM_ECORRUPT, "cannot read pack record at %llu: %s",
				  (unsigned long long)off,
				  errno == EIO ? "pack is truncated" : strerror(errno));
	stored->len = rec->stored_len;
	stored->data[stored->len] = '\0';
	return 0;
}

/*
 * chunker.c - FastCDC content-defined chunking (Xia et al., USENIX ATC 2016)
 * with normalised chunking, level 2.
 *
 * The hash is the gear hash h = (h << 1) + gear[byte]. After the shift, a
 * byte's contribution leaves the top of the word 64 bytes later, so the top
 * bits of h depend on the last 64 bytes and nothing before them. A cut is
 * taken where the top bits of h are all zero ("top bits" masks rather than the
 * paper's spread masks: the top bits are the best mixed ones, and the window
 * is the same for every mask width). With b = log2(avg):
 *     before avg: mask_s, the top b + 2 bits  (harder to hit)
 *     from avg:   mask_l, the top b - 2 bits  (easier to hit)
 * No byte before min is hashed at all (the paper's skip); hashing starts at
 * offset min with h = 0, and the chunk is cut at max if no position matched.
 * A chunk includes the byte whose hash matched. On random data with the
 * default 16/64/256 KiB the mean chunk is about 74 KiB (avg + 14%).
 *
 * The gear table is 256 outputs of splitmix64 from seed 0x646d2d6368756e81,
 * the first seed from 0x646d2d6368756e6b ("dm-chunk") upward for which h,
 * hashed from 0 over a run of one repeated byte value, never has its top 12
 * bits all zero (so a chunk inside such a run is cut at max whenever
 * avg >= 16 KiB), nor, for a run of zeros, its top 5 bits (cut at max for
 * every valid avg). Changing the table changes every chunk id ever stored:
 * never do it.
 *
 * Invariants: the chunker holds no state; dm_chunker_cut only reads
 * data[0 .. min(len, max)), returns len when len <= min, otherwise a value in
 * (min, min(len, max)], and the value depends only on those bytes (never on
 * len beyond max).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "store/chunker.h"
#include "util/err.h"

#include "util/banned.h"

static const uint64_t gear[256] = {
	0x882cde1eb8527860, 0x2f481ef4876e7211, 0x2c8a7d6c3ab4b985,
	0x6fc982209703c722, 0x1d25e90a1bf16953, 0x8e4fcd8bfd74d439,
	0x5284f4566cd9be36, 0xe4687e95c2d1ec61, 0x0ab0731e600d9f80,
	0x0cd793aa85ae6344, 0x85a1b90465b7cddc, 0x0555d7aaea97f844,
	0xf1a934a7e6c2c565, 0x058b23b494609ef9, 0x2e8b3cbf3ee6561b,
	0xefab84510fa30d24, 0xc517094cdc5e1487, 0x9356aca58e6f82e3,
	0x2cab8ce0de7b5869, 0xa9e24460f070f07f, 0x8fa0d8acbd0c27c4,
	0xa54e3fa87cfdeb91, 0xfe39846a5543b87f, 0xe89d15b1e05111fa,
	0xc3e34c45126d2432, 0xa69b935991317491, 0xd1a7cabb0175c4c7,
	0xda5ea49e8f4b0472, 0x9b73bea41d55da59, 0x46a874c38c0822d2,
	0xc65cf40621a056f7, 0xe7f030b80c38ec6a, 0x73e7c27ceedba2ea,
	0x51f6defde036e11f, 0xe4d11b957984f2f8, 0x5e55553dc20ed8f3,
	0xf6a6b1aea258a258, 0xc3d855c18fc7eaa9, 0x95ea2b0cd14e3c72,
	0x3eaea593a68b0464, 0xa4d21f9c16eff6d3, 0x0c902ecf40d1bd8b,
	0x02596fdb55411ca7, 0x7c0a734d18c2f3e2, 0x5f628ed4d0e13e99,
	0x369c8364331a7da4, 0x189b6bc8bd8f57db, 0x8b91f7d78fd8863e,
	0x1a414eeb980efca6, 0xaa5b83380751a143, 0x229faac9a9a01864,
	0x1e6a2339ac46a39b, 0xa92a47305ffd6581, 0xb4c557e14cdecb42,
	0x0232fe824b8f1b07, 0xf72c09fd3acf3ddd, 0x5ecbe1a051fee434,
	0xe85eb47d1bd11b7f, 0xe76c522525bc0879, 0x5daae96c1c1a4a82,
	0x468de15299fbb23e, 0xa6b7fcea3658cc38, 0x500e52fe6f568962,
	0xd4d247b17af28e43, 0xba3253a7b4587806, 0x5b7a2e7e8f31bbe7,
	0x573a6543dddde6b1, 0x9952ebed90e9804d, 0xb78675373e8a9a50,
	0x0e7ef797e9f7ab88, 0xe74279df61143440, 0xf7575b62515a687e,
	0xf613c63085b11642, 0x510d108d06004b0a, 0x21765b830af785ea,
	0x18ab514c2a619d69, 0xb7620dd618ae3db9, 0xdf3c9082d45a3565,
	0xfab8b2df7f5ee1eb, 0x6219884834c4d140, 0xa7a4bfe5495d776d,
	0x7e73b4204b58e6bb, 0xb6f340e9b22bf9ad, 0x34377ae653bd87c4,
	0x93723c6fa3ecb0b4, 0x2acdbf6d5f9a21ed, 0xfe75b0eb9242ec8c,
	0x97e5f38f9ea99138, 0x7f8a75a0df730f0b, 0xf2c2e02d2f044d35,
	0x07b546e3d42e94e7, 0x5bab49425c8b3ac2, 0x9d8fec124658ff8c,
	0xe3bfa4d346ff4996, 0x086352fd002fb1ae, 0xfa84d69edc3d999a,
	0xe5925f05fa3c24f2, 0xd6d3d0b8b1510fd1, 0xa88c58838c41fb57,
	0x6f42940c690dcc98, 0xc976c3804227e94e, 0x2d6277cc06b9365d,
	0x47079bd637181aa0, 0xb193484d2fb9592f, 0xe26ebdde712becfa,
	0x3a0aa3f0791ed670, 0xf4d68a0619b4a505, 0x4dfb63f1c08adbba,
	0x4fbc0273d975a797, 0xc341b26f25a6ce43, 0x893f4554260281c9,
	0x42e962249ae22967, 0x6154facf9b0033a4, 0xa0b00f2a8c59132e,
	0xd17ed96ff05a6122, 0x36fa85389105cde0, 0xb33f260510735ed3,
	0x3ccdb13d729eab77, 0xc04c65a1c9d69453, 0x309718a3e7d21f32,
	0xe2c20f0d19615f5b, 0xf0a5a64aa451bda6, 0xeae361b274ac612a,
	0x6de4fbe4aebf2713, 0xfcf5f1ae4d487994, 0xe044c969e333c121,
	0x121a5fcbc3bc6703, 0x3bf7ec4fbba07476, 0x07a4fe6ec7db727c,
	0x51b68c38dd5fe01b, 0x73dfc08b4c884480, 0xc12b07f16c3edb72,
	0xf347ef95f5095441, 0xea9ee514f5e478de, 0xa85f3cfe76fa95df,
	0xc72038b9b650f064, 0xaa9416e95f604ffe, 0x047591e33fad9ccc,
	0xc925847f7aca37a9, 0xb3dec6c291b7cd9c, 0x77644f8b0caef54b,
	0xe83984d684b6c226, 0x6541808a0bc8d07d, 0x3cdf63bf5a4d1d9c,
	0xd880fd9c0982819e, 0x7217b0ba739f47d0, 0x151c4fcd8999eb24,
	0xa81d949855ffbb99, 0x5e55ff7605f28f15, 0xabbf4720ea7562d7,
	0x7f90159abd2c4f10, 0x6d2611ffdc4f5da6, 0x918e5578b018e680,
	0x5d515a809a24d8f2, 0xbfbac7884548fc73, 0xc97940ad58c89218,
	0x120cb9f782355041, 0xe530fd8e2461886a, 0x3aa37f39f5b490a0,
	0x1059e442281c1972, 0xb153482a0decd1c1, 0xf0235d52ac0ac1f9,
	0xb8494e22eecf4a4c, 0x09055b6bbd210f48, 0xf1882e9212aa940f,
	0x10d100c0b4091c52, 0xd69ba1d889ce87b5, 0x82035719cb2703d6,
	0x1263be8fd2aa26d5, 0x9f6f9d34df3e65e7, 0xdd55fbe8ec7b100a,
	0x8435ebb256373ab9, 0xd0a6fdd9c04c84f0, 0x3b85d81f94baff93,
	0xcd217d8c5489cbff, 0x72a58adb38b527f6, 0x13d19438c5ea410b,
	0xce85c1c063047774, 0x82d3cc42686a33ea, 0xaf1828f5ffb62f4e,
	0xc122e0510e2ede08, 0x72d2b16918d16e20, 0xc259c6d9e1537a73,
	0xf531e0de37d2169d, 0xe82648893d6c378e, 0x3ac5368a98aab6c3,
	0x58608c34e3266b69, 0xc7776ea98da37453, 0x2842ed0065f8aeb3,
	0xe42732bbd2951a74, 0x4315f0ef7a493570, 0x0b1d9ba103219c48,
	0xd2b043b3b8ceb660, 0x5b5ef435a7512a3d, 0xfe5626d75d953d0b,
	0x5c8e22c6103ca65c, 0x841644da4ea0fa17, 0x5938dc3b46a861ef,
	0x713f9d449481bbd1, 0x412abf6aa2507e56, 0x236eee6481066de8,
	0x24f8c5fa8f5d068d, 0x4053caf055f7cce2, 0xd55299835524b760,
	0x67992d5c10de603d, 0xd70cb7a1896a31ea, 0xe12b5e3d9a79af82,
	0x1d963b8ed3cbc66c, 0x98a90e45beee5985, 0xf5688d87c630370d,
	0xadccabcfe94a3f28, 0x7d27c37f6515673e, 0x1dee97eafc40d1e8,
	0xee969f949683ac13, 0x9aba0bcec9e74bc5, 0xee5b89272c71e592,
	0x2ed8b9ba288ea6af, 0x87908703f49a6801, 0x54b847db2091d6d0,
	0x04b22983cc9d2d94, 0xfe10680c9dbc8ef7, 0x80de72a7a66c03a2,
	0x9f1c69e6b7a6ec32, 0x94fbd408ef788f66, 0x786b556a311baead,
	0x86c3075433b73ecc, 0xb40d31fa5b0c9e50, 0x7636fb642936164f,
	0x03bff1bfe5fdceb8, 0xdd10b9c130e7339a, 0x14c9f93e7bf12a0a,
	0x4d6fb625af1fd182, 0x3528c489fb8b97a7, 0x5130c2a63ac98095,
	0xf98ec213e7d0f7d3, 0xb4d875f51f087d14, 0x31fdded1ce9a8dd0,
	0x9a5b1e3c6da23862, 0x607dec06e055be87, 0x4b151714b3ee8030,
	0x6f1b3c4e21683a4b, 0x3e538e223828df6c, 0x22f49d76b7e79a92,
	0xa1f2c2ad81a04bc5, 0x0f1d56345f0136ff, 0x82f916142e8a72d3,
	0x026042710421bbd2, 0x13dc5e3862b88a50, 0x18dfcb42e35abcfe,
	0x44096035b8069d4f, 0x3ede212a862de6ab, 0x7a7ed9bd8e3504a7,
	0x12218b25a6f366a7, 0x59184f55aaa6b5b7, 0xc725bc1e37c8cc49,
	0x8f1d996d3f06fd59,
};

void dm_chunker_params_default(struct dm_chunker_params *out)
{
	out->min = DM_CHUNK_MIN_DEFAULT;
	out->avg = DM_CHUNK_AVG_DEFAULT;
	out->max = DM_CHUNK_MAX_DEFAULT;
}

int dm_chunker_params_check(const struct dm_chunker_params *p, struct dm_err *err)
{
	if (p->min < DM_CHUNK_MIN_LIMIT)
		return dm_err_set(err, DM_EINVAL,
				  "invalid chunk sizes: min %u is below the limit %u",
				  p->min, DM_CHUNK_MIN_LIMIT);
	if (p->max > DM_CHUNK_MAX_LIMIT)
		return dm_err_set(err, DM_EINVAL,
				  "invalid chunk sizes: max %u is above the limit %u",
				  p->max, DM_CHUNK_MAX_LIMIT);
	if (p->min >= p->avg)
		return dm_err_set(err, DM_EINVAL,
				  "invalid chunk sizes: min %u must be below avg %u",
				  p->min, p->avg);
	if (p->avg >= p->max)
		return dm_err_set(err, DM_EINVAL,
				  "invalid chunk sizes: avg %u must be below max %u",
				  p->avg, p->max);
	if ((p->avg & (p->avg - 1)) != 0)
		return dm_err_set(err, DM_EINVAL,
				  "invalid chunk sizes: avg %u is not a power of two",
				  p->avg);
	return 0;
}

/* The top n bits set (0 < n < 64). */
static uint64_t top_bits(unsigned n)
{
	return ~UINT64_C(0) << (64 - n);
}

size_t dm_chunker_cut(const struct dm_chunker_params *p, const uint8_t *data, size_t len)
{
	assert(p->min >= DM_CHUNK_MIN_LIMIT && p->min < p->avg && p->avg < p->max);
	assert((p->avg & (p->avg - 1)) == 0);

	if (len <= p->min)
		return len;

	size_t end = len < p->max ? len : p->max;
	size_t normal = p->avg < end ? p->avg : end;
	unsigned bits = (unsigned)__builtin_ctz(p->avg);
	uint64_t mask_s = top_bits(bits + 2);
	uint64_t mask_l = top_bits(bits - 2);
	uint64_t h = 0;
	size_t i = p->min;

	for (; i < normal; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & mask_s))
			return i + 1;
	}
	for (; i < end; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & mask_l))
			return i + 1;
	}
	return end;
}

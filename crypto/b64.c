/*
 * crypto/b64.c: the envelope's base64 (RFC 4648, padded), for public
 * ciphertext only: not constant-time. Bulk work in AVX2 where the CPU has it
 * (24 bytes to 32 characters a step, the published vector method: shuffle
 * and multiply to split bits, a nibble table to validate and map), the rest
 * and every other CPU through stringencoders' modp_b64, which also decides
 * padding. Debian packages no vectorised base64 codec for C; at 1 MB the
 * table codec alone costs more time than the cipher (docs/envelope.md).
 */
#include "crypto_int.h"

#include <modp_b64.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FS_B64_AVX2 1
#include <immintrin.h>
#endif

#ifdef FS_B64_AVX2

/* 0: not probed yet, 1: AVX2, -1: none. Racing first callers store the same answer. */
static int have_avx2;

static int avx2(void)
{
	int v = __atomic_load_n(&have_avx2, __ATOMIC_RELAXED);

	if (v == 0) {
		__builtin_cpu_init();
		v = __builtin_cpu_supports("avx2") ? 1 : -1;
		__atomic_store_n(&have_avx2, v, __ATOMIC_RELAXED);
	}
	return v > 0;
}

/*
 * Encodes whole steps of 24 bytes while a step's two 16-byte loads stay
 * inside src (i + 28 <= n); returns the bytes consumed (a multiple of 24).
 * Writes exactly 4/3 of them as text.
 */
__attribute__((target("avx2"))) static size_t enc_avx2(char *dst, const uint8_t *src, size_t n)
{
	/* each 3 bytes a,b,c of a lane become the 32-bit word b,a,c,b */
	const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
	                                        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	/* 6-bit value to the offset that makes its character, by class:
	 * 0 a-z, 1-10 digits, 11 '+', 12 '/', 13 A-Z */
	const __m256i offs =
	    _mm256_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
	                     '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0,
	                     'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
	                     '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
	size_t i = 0;

	for (; i + 28 <= n; i += 24, dst += 32) {
		__m256i in = _mm256_inserti128_si256(
		    _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(src + i))),
		    _mm_loadu_si128((const __m128i *)(src + i + 12)), 1);
		in = _mm256_shuffle_epi8(in, spread);
		/* the four 6-bit fields of each word, one per byte, in text order */
		__m256i hi = _mm256_mulhi_epu16(_mm256_and_si256(in, _mm256_set1_epi32(0x0fc0fc00)),
		                                _mm256_set1_epi32(0x04000040));
		__m256i lo = _mm256_mullo_epi16(_mm256_and_si256(in, _mm256_set1_epi32(0x003f03f0)),
		                                _mm256_set1_epi32(0x01000010));
		__m256i v = _mm256_or_si256(hi, lo);
		__m256i cls = _mm256_subs_epu8(v, _mm256_set1_epi8(51));
		cls = _mm256_or_si256(cls,
		                      _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(26), v),
		                                       _mm256_set1_epi8(13)));
		v = _mm256_add_epi8(v, _mm256_shuffle_epi8(offs, cls));
		_mm256_storeu_si256((__m256i *)dst, v);
	}
	return i;
}

/*
 * Decodes whole steps of 32 characters while 12 or more characters follow
 * the step (the 8 bytes each store writes past its 24 land where the rest
 * goes); the last block, with any padding, is always left to the caller.
 * Returns the characters consumed (a multiple of 32), or SIZE_MAX when a
 * character is outside the alphabet.
 */
__attribute__((target("avx2"))) static size_t dec_avx2(uint8_t *dst, const char *src, size_t len)
{
	/* A character is valid when the classes of its two nibbles share no
	 * bit: high nibble 2 only with '+' or '/', 3 with 0-9, 4 and 6 with
	 * 1-15, 5 and 7 with 0-10, any other never. */
	const __m256i lo_cls =
	    _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a,
	                     0x1b, 0x1b, 0x1b, 0x1a, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	                     0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a);
	const __m256i hi_cls =
	    _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
	                     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
	                     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
	/* what to add to a valid character, by its high nibble ('/' takes index 1) */
	const __m256i shift =
	    _mm256_setr_epi8(0, 63 - '/', 62 - '+', 52 - '0', -'A', -'A', 26 - 'a', 26 - 'a', 0, 0,
	                     0, 0, 0, 0, 0, 0, 0, 63 - '/', 62 - '+', 52 - '0', -'A', -'A',
	                     26 - 'a', 26 - 'a', 0, 0, 0, 0, 0, 0, 0, 0);
	const __m256i m2f = _mm256_set1_epi8(0x2f);
	/* each lane's 12 bytes to the low 12 of the lane, then the lanes together */
	const __m256i pack =
	    _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5,
	                     4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
	const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
	size_t i = 0;

	for (; i + 32 + 12 <= len; i += 32, dst += 24) {
		__m256i in = _mm256_loadu_si256((const __m256i *)(src + i));
		__m256i hn = _mm256_and_si256(_mm256_srli_epi32(in, 4), m2f);
		__m256i lc = _mm256_shuffle_epi8(lo_cls, _mm256_and_si256(in, m2f));
		__m256i hc = _mm256_shuffle_epi8(hi_cls, hn);
		if (!_mm256_testz_si256(lc, hc))
			return SIZE_MAX;
		__m256i slash = _mm256_cmpeq_epi8(in, m2f);
		in = _mm256_add_epi8(in, _mm256_shuffle_epi8(shift, _mm256_add_epi8(slash, hn)));
		/* 4 x 6 bits -> 24 bits per word, then bytes in order */
		__m256i w = _mm256_maddubs_epi16(in, _mm256_set1_epi32(0x01400140));
		w = _mm256_madd_epi16(w, _mm256_set1_epi32(0x00011000));
		w = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(w, pack), lanes);
		_mm256_storeu_si256((__m256i *)dst, w);
	}
	return i;
}

#endif /* FS_B64_AVX2 */

size_t fs_crypto_b64_encode(char *dst, const uint8_t *src, size_t n)
{
	size_t done = 0;

#ifdef FS_B64_AVX2
	if (n >= 28 && avx2())
		done = enc_avx2(dst, src, n);
#endif
	return done / 3 * 4 +
	       modp_b64_encode(dst + done / 3 * 4, (const char *)src + done, n - done);
}

size_t fs_crypto_b64_decode(uint8_t *dst, const char *src, size_t len)
{
	size_t done = 0, r;

#ifdef FS_B64_AVX2
	if (len >= 44 && avx2() && (done = dec_avx2(dst, src, len)) == SIZE_MAX)
		return SIZE_MAX;
#endif
	r = modp_b64_decode((char *)dst + done / 4 * 3, src + done, len - done);
	return r == (size_t)-1 ? SIZE_MAX : done / 4 * 3 + r;
}

void fs_crypto_b64_force_portable(int on)
{
#ifdef FS_B64_AVX2
	__atomic_store_n(&have_avx2, on ? -1 : 0, __ATOMIC_RELAXED);
#else
	(void)on;
#endif
}

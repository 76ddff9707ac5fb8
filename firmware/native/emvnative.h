// Native arithmetic for the card's crypto (the MicroPython user C module
// _emvnative): Montgomery modular exponentiation for RSA, DES/TDEA, SHA-1,
// SM2 scalar multiplication and the SM3 compression function.
// See emvnative.c for the Python interface and docs/firmware.md
// ("the crypto provider") for what is and is not constant-time.
#ifndef EMVNATIVE_H
#define EMVNATIVE_H

#include <stddef.h>
#include <stdint.h>

// Limbs: 32 bits with 64-bit products where the core has a 32x32->64
// multiply (Armv7-M: UMULL/UMLAL); 16 bits with 32-bit products on
// ARMv6-M (Cortex-M0/M0+: MULS gives the low 32 bits only).
#if defined(__ARM_ARCH_6M__) || defined(EMVN_LIMB16)
typedef uint16_t emvn_limb_t;
typedef uint32_t emvn_dlimb_t;
#define EMVN_LIMB_BITS (16)
#else
typedef uint32_t emvn_limb_t;
typedef uint64_t emvn_dlimb_t;
#define EMVN_LIMB_BITS (32)
// SM3 (GB/T 32905): the compression function over nblocks whole 64-byte
// blocks, the 32-byte chaining value (eight big-endian words) updated in place.
#define EMVN_SM3_BYTES (32)
void emvn_sm3_compress(uint8_t state[EMVN_SM3_BYTES], const uint8_t *blocks, size_t nblocks);

// SM2 (sm2p256v1, GB/T 32918.5): out = x || y (big-endian, 32 bytes each) of
// [k]P for the 32-byte big-endian scalar k, 1 <= k < n, and the point P =
// point (x || y, 64 bytes, checked to lie on the curve) or the base point G
// when point is NULL. EMVN_INPUT_RANGE for k out of range, EMVN_NOT_ON_CURVE
// for a bad point. What is and is not constant-time: sm2.c.
int emvn_sm2_mul(uint8_t out[64], const uint8_t k[32], const uint8_t *point);

#endif
#define EMVN_LIMB_BYTES (EMVN_LIMB_BITS / 8)

// The largest modulus: 2048 bits (EMV keys are at most 1984 bits).
#define EMVN_MAX_BYTES (256)
#define EMVN_MAX_LIMBS (EMVN_MAX_BYTES / EMVN_LIMB_BYTES)

// Workspace sizes, in limbs, for s limbs of modulus.
#define EMVN_EXP_WORK(s) (16 * (s) + 4 * (s) + 4)
#define EMVN_CRT_WORK(s) (4 * (s) + 3 * (2 * (s) + 2) + 4 * (s) + 2 + EMVN_EXP_WORK(s))
#define EMVN_POW_WORK(s, es) (7 * (s) + ((es) ? (es) : 1) + 2)

// Errors from the functions below (0 is success).
#define EMVN_OK (0)
#define EMVN_EVEN_MODULUS (1)
#define EMVN_TOO_LARGE (2)
#define EMVN_INPUT_RANGE (3)
#define EMVN_NOT_ON_CURVE (4)

// Limbs needed for a big-endian number of len bytes (leading zero bytes ignored).
size_t emvn_limbs_for(const uint8_t *be, size_t len);

// out = base^exp mod mod (big-endian bytes; out has mod_len bytes). base < mod,
// mod odd. Variable time in the exponent: for public exponents only.
int emvn_powmod_public(uint8_t *out, const uint8_t *base, size_t base_len, const uint8_t *exp, size_t exp_len,
    const uint8_t *mod, size_t mod_len, emvn_limb_t *work);

// out (out_len bytes) = c^d mod pq by the CRT, from p, q, dp, dq, qinv
// (big-endian bytes). c must be below pq; p and q odd. work holds
// EMVN_CRT_WORK(s) limbs, s = the larger limb count of p and q.
int emvn_rsa_crt(uint8_t *out, size_t out_len, const uint8_t *c, size_t c_len, const uint8_t *p, size_t p_len,
    const uint8_t *q, size_t q_len, const uint8_t *dp, size_t dp_len, const uint8_t *dq, size_t dq_len,
    const uint8_t *qinv, size_t qinv_len, emvn_limb_t *work);

// t[0..s) += a[0..s) * b, the carry out returned: Thumb-1 assembly on
// ARMv6-M (mont_armv6m.c), the inner loop of mont.c's products there.
#if defined(__ARM_ARCH_6M__)
emvn_limb_t emvn_mac_armv6m(emvn_limb_t *t, const emvn_limb_t *a, emvn_limb_t b, size_t s);
// SM3 (GB/T 32905): the compression function over nblocks whole 64-byte
// blocks, the 32-byte chaining value (eight big-endian words) updated in place.
#define EMVN_SM3_BYTES (32)
void emvn_sm3_compress(uint8_t state[EMVN_SM3_BYTES], const uint8_t *blocks, size_t nblocks);

// SM2 (sm2p256v1, GB/T 32918.5): out = x || y (big-endian, 32 bytes each) of
// [k]P for the 32-byte big-endian scalar k, 1 <= k < n, and the point P =
// point (x || y, 64 bytes, checked to lie on the curve) or the base point G
// when point is NULL. EMVN_INPUT_RANGE for k out of range, EMVN_NOT_ON_CURVE
// for a bad point. What is and is not constant-time: sm2.c.
int emvn_sm2_mul(uint8_t out[64], const uint8_t k[32], const uint8_t *point);

#endif

// DES: the cooked key schedule of one 8-byte key (32 words), and one block
// through 16 rounds per 32 words of schedule (1 pass: DES, 3: TDEA EDE).
void emvn_des_round_keys(uint32_t *out, const uint8_t *key8);
void emvn_des_reverse(uint32_t *out, const uint32_t *in);
void emvn_des_crypt(const uint32_t *ks, size_t words, const uint8_t *in, uint8_t *out);

// SHA-1 (FIPS 180-4) of len bytes of data, one shot: the 20-byte digest into out.
#define EMVN_SHA1_BYTES (20)
void emvn_sha1(uint8_t out[EMVN_SHA1_BYTES], const uint8_t *data, size_t len);

// SM3 (GB/T 32905): the compression function over nblocks whole 64-byte
// blocks, the 32-byte chaining value (eight big-endian words) updated in place.
#define EMVN_SM3_BYTES (32)
void emvn_sm3_compress(uint8_t state[EMVN_SM3_BYTES], const uint8_t *blocks, size_t nblocks);

// SM2 (sm2p256v1, GB/T 32918.5): out = x || y (big-endian, 32 bytes each) of
// [k]P for the 32-byte big-endian scalar k, 1 <= k < n, and the point P =
// point (x || y, 64 bytes, checked to lie on the curve) or the base point G
// when point is NULL. EMVN_INPUT_RANGE for k out of range, EMVN_NOT_ON_CURVE
// for a bad point. What is and is not constant-time: sm2.c.
int emvn_sm2_mul(uint8_t out[64], const uint8_t k[32], const uint8_t *point);

#endif

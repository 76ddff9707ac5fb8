// SM2 scalar multiplication on the curve sm2p256v1 (GB/T 32918.5-2017):
// y^2 = x^3 - 3x + b over the prime p = 2^256 - 2^224 - 2^96 + 2^64 - 1,
// for the card's SM2 signatures (firmware/crypto/sm2.py).
//
// Field elements are 8 limbs of 32 bits, least significant first, kept in
// Montgomery form (a R mod p, R = 2^256) and always fully reduced (< p).
// Products are 32x32->64: one UMULL/UMLAL on Armv7-M; on ARMv6-M (no 64-bit
// multiply) four 16x16 MULS (mul32 below), so the M0+ build is slower. Since p = -1 mod 2^32,
// the Montgomery factor -p^-1 mod 2^32 is 1.
//
// Points are Jacobian (X, Y, Z) standing for (X/Z^2, Y/Z^3); Z = 0 is the
// point at infinity. [k]P is a fixed 4-bit window over all 64 nibbles of the
// 32-byte scalar (leading zeros too): 4 doublings and one addition per
// window, the addition's operand read from a table of 0P..15P by scanning
// all 16 entries and keeping one with a mask. The cases the addition
// formula cannot do (an operand at infinity; equal operands) are handled
// with masks: the accumulator at infinity (before the first non-zero
// nibble) takes the table entry, a zero nibble keeps the accumulator. Equal
// or opposite operands cannot occur for a scalar below n on a point of
// order n (the accumulator is [16m]P with 16m < n, the entry [w]P, w < 16).
//
// Constant time, with respect to the scalar (the secret: the signature's k
// or a private key), as far as C allows: the same field operations in the
// same order and the same memory addresses whatever the scalar's value;
// every choice on secret data is a mask, never a branch or an index. What is
// not: the point's validity check and the scalar's range check (1 <= k < n)
// branch on their result (an invalid input is refused, a valid one always
// takes the same path); the inversion at the end is a power by the public
// exponent p - 2 (its branches depend on p only); Cortex-M3's UMULL/UMLAL
// finish early for small operands (3-7 cycles), so a multiply's time there
// depends on the data (ARMv6-M's MULS does not: 1 cycle on an RP2040, 32
// with the small multiplier); the compiler is trusted not to
// turn the masks into branches (not checked instruction by instruction);
// there is no scalar or coordinate blinding; the signature's arithmetic
// mod n around this (firmware/crypto/sm2.py) is Python integers.

#include <string.h>

#include "emvnative.h"

#pragma GCC optimize("O2")

typedef uint32_t fe[8];

typedef struct {
    fe x, y, z;
} point_t;

static const fe P = { 0xFFFFFFFF, 0xFFFFFFFF, 0x00000000, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE };
// R^2 mod p (into Montgomery form), R mod p (1 in Montgomery form), b R mod p.
static const fe R2 = { 0x00000003, 0x00000002, 0xFFFFFFFF, 0x00000002, 0x00000001, 0x00000001, 0x00000002, 0x00000004 };
static const fe ONE = { 0x00000001, 0x00000000, 0xFFFFFFFF, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000001 };
static const fe B_MONT = { 0x2BC0DD42, 0x90D23063, 0xE9B537AB, 0x71CF379A, 0x5EA51C3C, 0x52798150, 0xBA20E2C8, 0x240FE188 };
// The base point G in Montgomery form.
static const fe GX = { 0xF418029E, 0x61328990, 0xDCA6C050, 0x3E7981ED, 0xAC24C3C3, 0xD6A1ED99, 0xE1C13B05, 0x91167A5E };
static const fe GY = { 0x3C2D0DDD, 0xC1354E59, 0x8D3295FA, 0xC1F5E578, 0x6E2A48F8, 0x8D4CFB06, 0x81D735BD, 0x63CD65D4 };
// The group order n, big-endian.
static const uint8_t N_BE[32] = {
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x72, 0x03, 0xDF, 0x6B, 0x21, 0xC6, 0x05, 0x2B, 0x53, 0xBB, 0xF4, 0x09, 0x39, 0xD5, 0x41, 0x23,
};

// 32x32->64. ARMv6-M has no 64-bit multiply (MULS gives the low 32 bits),
// and GCC's (uint64_t)a * b there is a call to the 64x64 helper: four 16x16
// products inline instead (no carry can overflow: each partial sum stays
// below 2^32). EMVN_LIMB16 (the host tests' ARMv6-M build) takes this path too.
#if defined(__ARM_ARCH_6M__) || defined(EMVN_LIMB16)
static inline uint64_t mul32(uint32_t a, uint32_t b) {
    uint32_t al = a & 0xFFFF, ah = a >> 16, bl = b & 0xFFFF, bh = b >> 16;
    uint32_t ll = al * bl;
    uint32_t mid = al * bh + (ll >> 16);
    uint32_t mid2 = ah * bl + (mid & 0xFFFF);
    uint32_t hi = ah * bh + (mid >> 16) + (mid2 >> 16);
    return ((uint64_t)hi << 32) | ((mid2 << 16) | (ll & 0xFFFF));
}
#else
static inline uint64_t mul32(uint32_t a, uint32_t b) {
    return (uint64_t)a * b;
}
#endif

// ---- field arithmetic mod p ----

// r = t - p if t (9 limbs, below 2p) >= p, else t; by a mask.
static void fe_reduce_once(fe r, const uint32_t t[8], uint32_t top) {
    fe d;
    uint64_t borrow = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t v = (uint64_t)t[i] - P[i] - borrow;
        d[i] = (uint32_t)v;
        borrow = (v >> 32) & 1;
    }
    // keep d when the subtraction did not borrow past the top limb
    uint32_t use_d = 0u - (uint32_t)((top | (uint32_t)(borrow ^ 1)) & 1);
    for (int i = 0; i < 8; i++) {
        r[i] = (d[i] & use_d) | (t[i] & ~use_d);
    }
}

static void fe_add(fe r, const fe a, const fe b) {
    uint32_t t[8];
    uint64_t c = 0;
    for (int i = 0; i < 8; i++) {
        c += (uint64_t)a[i] + b[i];
        t[i] = (uint32_t)c;
        c >>= 32;
    }
    fe_reduce_once(r, t, (uint32_t)c);
}

static void fe_sub(fe r, const fe a, const fe b) {
    uint32_t t[8];
    uint64_t borrow = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t v = (uint64_t)a[i] - b[i] - borrow;
        t[i] = (uint32_t)v;
        borrow = (v >> 32) & 1;
    }
    uint32_t mask = 0u - (uint32_t)borrow;  // add p back after a borrow
    uint64_t c = 0;
    for (int i = 0; i < 8; i++) {
        c += (uint64_t)t[i] + (P[i] & mask);
        r[i] = (uint32_t)c;
        c >>= 32;
    }
}

// r = a b R^-1 mod p (CIOS; the factor -p^-1 mod 2^32 is 1, so m = t[0]).
static void fe_mul(fe r, const fe a, const fe b) {
    uint32_t t[10];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 8; i++) {
        uint64_t c = 0;
        uint32_t bi = b[i];
        for (int j = 0; j < 8; j++) {
            c += mul32(a[j], bi) + t[j];
            t[j] = (uint32_t)c;
            c >>= 32;
        }
        c += t[8];
        t[8] = (uint32_t)c;
        t[9] = (uint32_t)(c >> 32);
        uint32_t m = t[0];
        c = (mul32(m, P[0]) + t[0]) >> 32;
        for (int j = 1; j < 8; j++) {
            c += mul32(m, P[j]) + t[j];
            t[j - 1] = (uint32_t)c;
            c >>= 32;
        }
        c += t[8];
        t[7] = (uint32_t)c;
        t[8] = t[9] + (uint32_t)(c >> 32);
    }
    fe_reduce_once(r, t, t[8]);
}

static void fe_sqr(fe r, const fe a) {
    fe_mul(r, a, a);
}

// All ones when a = 0, else 0.
static uint32_t fe_zero_mask(const fe a) {
    uint32_t z = 0;
    for (int i = 0; i < 8; i++) {
        z |= a[i];
    }
    return ((z | (0u - z)) >> 31) - 1u;
}

static void fe_select(fe r, const fe a, uint32_t mask) {
    for (int i = 0; i < 8; i++) {
        r[i] = (a[i] & mask) | (r[i] & ~mask);
    }
}

// r = a^(p-2) = a^-1 (p prime; a != 0). The exponent is public.
static void fe_inv(fe r, const fe a) {
    fe x;
    memcpy(x, ONE, sizeof(fe));
    for (int i = 7; i >= 0; i--) {
        uint32_t e = i == 0 ? P[0] - 2 : P[i];
        for (int bit = 31; bit >= 0; bit--) {
            fe_sqr(x, x);
            if ((e >> bit) & 1) {
                fe_mul(x, x, a);
            }
        }
    }
    memcpy(r, x, sizeof(fe));
}

// Big-endian 32 bytes <-> 8 limbs; from_bytes: 1 when the value is below p.
static int fe_from_bytes(fe r, const uint8_t *be) {
    for (int i = 0; i < 8; i++) {
        const uint8_t *q = be + 28 - 4 * i;
        r[i] = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
    }
    for (int i = 7; i >= 0; i--) {
        if (r[i] != P[i]) {
            return r[i] < P[i];
        }
    }
    return 0;
}

static void fe_to_bytes(uint8_t *be, const fe a) {
    for (int i = 0; i < 8; i++) {
        uint8_t *q = be + 28 - 4 * i;
        q[0] = (uint8_t)(a[i] >> 24);
        q[1] = (uint8_t)(a[i] >> 16);
        q[2] = (uint8_t)(a[i] >> 8);
        q[3] = (uint8_t)a[i];
    }
}

// ---- points ----

// r = 2a (dbl-2001-b for a = -3): delta = Z^2, gamma = Y^2, beta = X gamma,
// alpha = 3 (X - delta)(X + delta); X3 = alpha^2 - 8 beta,
// Z3 = (Y + Z)^2 - gamma - delta, Y3 = alpha (4 beta - X3) - 8 gamma^2.
// At infinity (Z = 0) it gives Z3 = 0 again.
static void point_double(point_t *r, const point_t *a) {
    fe delta, gamma, beta, alpha, t1, t2;
    fe_sqr(delta, a->z);
    fe_sqr(gamma, a->y);
    fe_mul(beta, a->x, gamma);
    fe_sub(t1, a->x, delta);
    fe_add(t2, a->x, delta);
    fe_mul(alpha, t1, t2);
    fe_add(t1, alpha, alpha);
    fe_add(alpha, t1, alpha);
    fe_add(t1, a->y, a->z);
    fe_sqr(t1, t1);
    fe_sub(t1, t1, gamma);
    fe_sub(r->z, t1, delta);
    fe_add(beta, beta, beta);
    fe_add(beta, beta, beta);  // 4 beta
    fe_sqr(t1, alpha);
    fe_add(t2, beta, beta);
    fe_sub(r->x, t1, t2);
    fe_sub(t1, beta, r->x);
    fe_mul(t1, alpha, t1);
    fe_sqr(gamma, gamma);
    fe_add(gamma, gamma, gamma);
    fe_add(gamma, gamma, gamma);
    fe_add(gamma, gamma, gamma);  // 8 gamma^2
    fe_sub(r->y, t1, gamma);
}

// r = a + b for a != +-b, neither at infinity (the caller masks those cases):
// U1 = X1 Z2^2, U2 = X2 Z1^2, S1 = Y1 Z2^3, S2 = Y2 Z1^3, H = U2 - U1,
// R = S2 - S1; X3 = R^2 - H^3 - 2 U1 H^2, Y3 = R (U1 H^2 - X3) - S1 H^3,
// Z3 = Z1 Z2 H.
static void point_add(point_t *r, const point_t *a, const point_t *b) {
    fe z1z1, z2z2, u1, u2, s1, s2, h, rr, hh, hhh, v, t;
    fe_sqr(z1z1, a->z);
    fe_sqr(z2z2, b->z);
    fe_mul(u1, a->x, z2z2);
    fe_mul(u2, b->x, z1z1);
    fe_mul(s1, a->y, z2z2);
    fe_mul(s1, s1, b->z);
    fe_mul(s2, b->y, z1z1);
    fe_mul(s2, s2, a->z);
    fe_sub(h, u2, u1);
    fe_sub(rr, s2, s1);
    fe_sqr(hh, h);
    fe_mul(hhh, hh, h);
    fe_mul(v, u1, hh);
    fe_mul(t, a->z, b->z);
    fe_mul(r->z, t, h);
    fe_sqr(t, rr);
    fe_sub(t, t, hhh);
    fe_sub(t, t, v);
    fe_sub(r->x, t, v);
    fe_sub(t, v, r->x);
    fe_mul(t, rr, t);
    fe_mul(s1, s1, hhh);
    fe_sub(r->y, t, s1);
}

static void point_select(point_t *r, const point_t *a, uint32_t mask) {
    fe_select(r->x, a->x, mask);
    fe_select(r->y, a->y, mask);
    fe_select(r->z, a->z, mask);
}

// Whether the affine (x, y), Montgomery form, satisfies y^2 = x^3 - 3x + b.
static int on_curve(const fe x, const fe y) {
    fe lhs, rhs, t;
    fe_sqr(lhs, y);
    fe_sqr(rhs, x);
    fe_mul(rhs, rhs, x);
    fe_add(t, x, x);
    fe_add(t, t, x);
    fe_sub(rhs, rhs, t);
    fe_add(rhs, rhs, B_MONT);
    fe_sub(t, lhs, rhs);
    return fe_zero_mask(t) != 0;
}

// 1 when 1 <= k < n (big-endian 32 bytes).
static int scalar_in_range(const uint8_t *k) {
    int nonzero = 0;
    for (int i = 0; i < 32; i++) {
        nonzero |= k[i];
    }
    if (!nonzero) {
        return 0;
    }
    for (int i = 0; i < 32; i++) {
        if (k[i] != N_BE[i]) {
            return k[i] < N_BE[i];
        }
    }
    return 0;
}

#define TABLE (16)

int emvn_sm2_mul(uint8_t out[64], const uint8_t k[32], const uint8_t *point) {
    point_t table[TABLE], acc, sum, t;
    if (!scalar_in_range(k)) {
        return EMVN_INPUT_RANGE;
    }
    memset(table, 0, sizeof(table));
    if (point == NULL) {
        memcpy(table[1].x, GX, sizeof(fe));
        memcpy(table[1].y, GY, sizeof(fe));
    } else {
        if (!fe_from_bytes(table[1].x, point) || !fe_from_bytes(table[1].y, point + 32)) {
            return EMVN_NOT_ON_CURVE;
        }
        fe_mul(table[1].x, table[1].x, R2);
        fe_mul(table[1].y, table[1].y, R2);
        if (!on_curve(table[1].x, table[1].y)) {
            return EMVN_NOT_ON_CURVE;
        }
    }
    memcpy(table[1].z, ONE, sizeof(fe));
    point_double(&table[2], &table[1]);
    for (int i = 3; i < TABLE; i++) {
        point_add(&table[i], &table[i - 1], &table[1]);
    }
    // acc = infinity
    memcpy(acc.x, ONE, sizeof(fe));
    memcpy(acc.y, ONE, sizeof(fe));
    memset(acc.z, 0, sizeof(fe));
    for (int i = 0; i < 64; i++) {
        uint32_t w = (k[i >> 1] >> ((i & 1) ? 0 : 4)) & 15;
        for (int d = 0; d < 4; d++) {
            point_double(&acc, &acc);
        }
        // t = table[w], every entry read
        memset(&t, 0, sizeof(t));
        for (uint32_t j = 0; j < TABLE; j++) {
            uint32_t eq = ((j ^ w) - 1u) >> 31;  // 1 when j == w
            point_select(&t, &table[j], 0u - eq);
        }
        point_add(&sum, &acc, &t);
        uint32_t at_inf = fe_zero_mask(acc.z);
        uint32_t nonzero = 0u - ((w | (0u - w)) >> 31);
        point_select(&acc, &sum, nonzero & ~at_inf);
        point_select(&acc, &t, nonzero & at_inf);
    }
    int err = EMVN_OK;
    if (fe_zero_mask(acc.z)) {
        err = EMVN_INPUT_RANGE;  // cannot happen for 1 <= k < n on a point of order n
    } else {
        fe zi, zi2, one_plain = { 1, 0, 0, 0, 0, 0, 0, 0 };
        fe_inv(zi, acc.z);
        fe_sqr(zi2, zi);
        fe_mul(acc.x, acc.x, zi2);
        fe_mul(zi2, zi2, zi);
        fe_mul(acc.y, acc.y, zi2);
        fe_mul(acc.x, acc.x, one_plain);  // out of Montgomery form
        fe_mul(acc.y, acc.y, one_plain);
        fe_to_bytes(out, acc.x);
        fe_to_bytes(out + 32, acc.y);
        memset(zi, 0, sizeof(zi));
        memset(zi2, 0, sizeof(zi2));
    }
    // the table and the accumulator depend on the scalar: zeroed (volatile so the stores stay)
    volatile uint8_t *v = (volatile uint8_t *)table;
    for (size_t i = 0; i < sizeof(table); i++) {
        v[i] = 0;
    }
    v = (volatile uint8_t *)&acc;
    for (size_t i = 0; i < sizeof(acc); i++) {
        v[i] = 0;
    }
    v = (volatile uint8_t *)&sum;
    for (size_t i = 0; i < sizeof(sum); i++) {
        v[i] = 0;
    }
    v = (volatile uint8_t *)&t;
    for (size_t i = 0; i < sizeof(t); i++) {
        v[i] = 0;
    }
    return err;
}

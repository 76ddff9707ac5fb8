// Montgomery modular arithmetic for RSA (the private operation in CRT form
// and a public-exponent power), written for emvkit's token firmware.
//
// Numbers are arrays of s limbs, least significant first (emvnative.h:
// 32-bit limbs on Armv7-M, 16-bit on ARMv6-M). For an odd modulus n < R =
// 2^(s * EMVN_LIMB_BITS), mont_mul(a, b) = a b R^-1 mod n (CIOS: the
// product and the reduction interleaved word by word, then one conditional
// subtraction done with a mask), for a b < n R; its result is below n.
//
// Constant time (with respect to the secret values: the primes, the CRT
// exponents and qinv, the message, the result), as far as C allows:
// - mont_mul, mont_redc, the modular doubling, subtraction and the final
//   subtractions run the same instructions and touch the same addresses
//   whatever the values: every loop runs over all s limbs, every choice is
//   made with a mask, never a branch;
// - the private exponentiation (mont_exp_ct) is a fixed 4-bit window over
//   all s * EMVN_LIMB_BITS bits of the exponent buffer (leading zeros too):
//   4 squarings and one multiplication per window, by table[0] (= 1) when
//   the window is 0; the table entry is read by scanning all 16 entries and
//   keeping one with a mask, so no address depends on the exponent;
// - what is not: the limb counts and byte lengths (p's and q's sizes) and
//   the bit length of the modulus (the start of R mod n) are public by
//   design; mont_exp_public (the public-exponent check) is square-and-
//   multiply over the bits of a public exponent; the multiply instruction
//   itself: Cortex-M3's UMULL/UMLAL finish early for small operands (3-7
//   cycles), so on a Cortex-M3 the time of a multiply depends on the data
//   (Cortex-M4/M7/M33 and the ARMv6-M MULS of an RP2040 are fixed-time);
//   and the compiler is trusted not to turn the masks into branches (not
//   checked instruction by instruction). There is no message or exponent
//   blinding.
// Scratch limbs that held secrets are zeroed by the caller (emvnative.c).

#include <string.h>

#include "emvnative.h"

#pragma GCC optimize("O2")

#define LB EMVN_LIMB_BITS
#define LIMB_MAX ((emvn_limb_t)~(emvn_limb_t)0)

typedef struct {
    const emvn_limb_t *n;
    size_t s;
    emvn_limb_t n0inv; // -n^-1 mod 2^LB
} mont_t;

// ---- bytes <-> limbs ----

size_t emvn_limbs_for(const uint8_t *be, size_t len) {
    while (len && be[0] == 0) {
        be++;
        len--;
    }
    return (len + EMVN_LIMB_BYTES - 1) / EMVN_LIMB_BYTES;
}

// Big-endian bytes into s limbs; EMVN_TOO_LARGE when the value needs more.
static int from_bytes(emvn_limb_t *x, size_t s, const uint8_t *be, size_t len) {
    memset(x, 0, s * sizeof(emvn_limb_t));
    for (size_t i = 0; i < len; i++) {
        size_t pos = len - 1 - i; // byte i from the least significant end
        uint8_t b = be[pos];
        size_t limb = i / EMVN_LIMB_BYTES;
        if (limb >= s) {
            if (b) {
                return EMVN_TOO_LARGE;
            }
            continue;
        }
        x[limb] |= (emvn_limb_t)((emvn_limb_t)b << (8 * (i % EMVN_LIMB_BYTES)));
    }
    return EMVN_OK;
}

// s limbs into len big-endian bytes; EMVN_TOO_LARGE when they do not fit.
static int to_bytes(uint8_t *be, size_t len, const emvn_limb_t *x, size_t s) {
    for (size_t i = 0; i < s * EMVN_LIMB_BYTES; i++) {
        uint8_t b = (uint8_t)(x[i / EMVN_LIMB_BYTES] >> (8 * (i % EMVN_LIMB_BYTES)));
        if (i < len) {
            be[len - 1 - i] = b;
        } else if (b) {
            return EMVN_TOO_LARGE;
        }
    }
    for (size_t i = s * EMVN_LIMB_BYTES; i < len; i++) {
        be[len - 1 - i] = 0;
    }
    return EMVN_OK;
}

// ---- limb arithmetic ----

// r = a - b over s limbs; returns the borrow (0 or 1).
static emvn_limb_t sub_n(emvn_limb_t *r, const emvn_limb_t *a, const emvn_limb_t *b, size_t s) {
    emvn_limb_t borrow = 0;
    for (size_t j = 0; j < s; j++) {
        emvn_dlimb_t d = (emvn_dlimb_t)a[j] - b[j] - borrow;
        r[j] = (emvn_limb_t)d;
        borrow = (emvn_limb_t)((d >> LB) & 1);
    }
    return borrow;
}

// r = mask ? a : b (mask all ones or zero).
static void select_n(emvn_limb_t *r, const emvn_limb_t *a, const emvn_limb_t *b, emvn_limb_t mask, size_t s) {
    for (size_t j = 0; j < s; j++) {
        r[j] = (emvn_limb_t)((a[j] & mask) | (b[j] & (emvn_limb_t)~mask));
    }
}

// -n0^-1 mod 2^LB for odd n0 (Newton: each step doubles the correct bits, from 3).
static emvn_limb_t neg_inverse(emvn_limb_t n0) {
    emvn_dlimb_t x = n0;
    for (int i = 0; i < 5; i++) {
        x = (emvn_limb_t)(x * (emvn_limb_t)(2 - (emvn_limb_t)(n0 * x)));
    }
    return (emvn_limb_t)(0 - (emvn_limb_t)x);
}

static int bit_length(const emvn_limb_t *x, size_t s) {
    for (size_t i = s; i-- > 0;) {
        if (x[i]) {
            int b = 0;
            emvn_limb_t v = x[i];
            while (v) {
                b++;
                v >>= 1;
            }
            return (int)(i * LB) + b;
        }
    }
    return 0;
}

// ---- Montgomery ----

// t[0..s) += a[0..s) * b; returns the carry out (one limb). The one inner
// loop of every product and reduction: on ARMv6-M it is the hand-written
// Thumb-1 of mont_armv6m.c, elsewhere this C.
#if defined(__ARM_ARCH_6M__)
#define mac emvn_mac_armv6m
#else
static emvn_limb_t mac(emvn_limb_t *t, const emvn_limb_t *a, emvn_limb_t b, size_t s) {
    emvn_dlimb_t c = 0;
    size_t j = 0;
    for (; j + 4 <= s; j += 4) {
        c += (emvn_dlimb_t)a[j] * b + t[j];
        t[j] = (emvn_limb_t)c;
        c = (c >> LB) + (emvn_dlimb_t)a[j + 1] * b + t[j + 1];
        t[j + 1] = (emvn_limb_t)c;
        c = (c >> LB) + (emvn_dlimb_t)a[j + 2] * b + t[j + 2];
        t[j + 2] = (emvn_limb_t)c;
        c = (c >> LB) + (emvn_dlimb_t)a[j + 3] * b + t[j + 3];
        t[j + 3] = (emvn_limb_t)c;
        c >>= LB;
    }
    for (; j < s; j++) {
        c += (emvn_dlimb_t)a[j] * b + t[j];
        t[j] = (emvn_limb_t)c;
        c >>= LB;
    }
    return (emvn_limb_t)c;
}
#endif

// t[0] += c, t[1] += the carry (which cannot carry further where it is used).
static void add_carry(emvn_limb_t *t, emvn_limb_t c) {
    emvn_dlimb_t d = (emvn_dlimb_t)t[0] + c;
    t[0] = (emvn_limb_t)d;
    t[1] = (emvn_limb_t)(t[1] + (emvn_limb_t)(d >> LB));
}

// r = t[0..s) - n unless that borrows past top (t + top R < 2n): the final
// subtraction of every Montgomery operation, with a mask.
static void final_sub(emvn_limb_t *r, const emvn_limb_t *t, emvn_limb_t top, const emvn_limb_t *n, size_t s) {
    emvn_limb_t borrow = sub_n(r, t, n, s);
    emvn_limb_t under = (emvn_limb_t)((((emvn_dlimb_t)top - borrow) >> LB) & 1);
    select_n(r, t, r, (emvn_limb_t)(0 - under), s);
}

// r = a b R^-1 mod n (a b < n R); t has 2s + 2 limbs; r may be a or b.
// CIOS with the reduction's shift done by moving the window u = t + i one
// limb a step (no copying): after step i the running value is u[1..s+1].
static void mont_mul(emvn_limb_t *r, const emvn_limb_t *a, const emvn_limb_t *b, const mont_t *m, emvn_limb_t *t) {
    const size_t s = m->s;
    memset(t, 0, (2 * s + 2) * sizeof(emvn_limb_t));
    for (size_t i = 0; i < s; i++) {
        emvn_limb_t *u = t + i;
        add_carry(u + s, mac(u, a, b[i], s));
        emvn_limb_t mm = (emvn_limb_t)((emvn_dlimb_t)u[0] * m->n0inv);
        add_carry(u + s, mac(u, m->n, mm, s));  // u[0] is now 0
    }
    final_sub(r, t + s, t[2 * s], m->n, s);
}

// T R^-1 mod n into r, T in t[0..2s) below n R, t[2s] = 0 (destroyed).
static void redc_in_place(emvn_limb_t *r, emvn_limb_t *t, const mont_t *m) {
    const size_t s = m->s;
    emvn_limb_t cy = 0;
    for (size_t i = 0; i < s; i++) {
        emvn_limb_t mm = (emvn_limb_t)((emvn_dlimb_t)t[i] * m->n0inv);
        emvn_dlimb_t d = (emvn_dlimb_t)t[i + s] + mac(t + i, m->n, mm, s) + cy;
        t[i + s] = (emvn_limb_t)d;
        cy = (emvn_limb_t)(d >> LB);
    }
    final_sub(r, t + s, cy, m->n, s);
}

// r = T R^-1 mod n for T of 2s limbs below n R; t has 2s + 2 limbs.
static void mont_redc(emvn_limb_t *r, const emvn_limb_t *T, const mont_t *m, emvn_limb_t *t) {
    const size_t s = m->s;
    memcpy(t, T, 2 * s * sizeof(emvn_limb_t));
    t[2 * s] = 0;
    redc_in_place(r, t, m);
}

// r = a a R^-1 mod n (a < n); t has 2s + 2 limbs; r may be a. The square
// first (each cross product once, then doubled, then the squares on the
// diagonal: s (s + 1) / 2 limb products instead of s^2), then the reduction.
static void mont_sqr(emvn_limb_t *r, const emvn_limb_t *a, const mont_t *m, emvn_limb_t *t) {
    const size_t s = m->s;
    memset(t, 0, (2 * s + 2) * sizeof(emvn_limb_t));
    for (size_t i = 0; i + 1 < s; i++) {
        t[i + s] = mac(t + 2 * i + 1, a + i + 1, a[i], s - i - 1);
    }
    emvn_limb_t top = 0;
    for (size_t j = 0; j < 2 * s; j++) {
        emvn_limb_t v = t[j];
        t[j] = (emvn_limb_t)((emvn_limb_t)(v << 1) | top);
        top = (emvn_limb_t)(v >> (LB - 1));
    }
    emvn_dlimb_t c = 0;
    for (size_t i = 0; i < s; i++) {
        emvn_dlimb_t sq = (emvn_dlimb_t)a[i] * a[i];
        c += (emvn_dlimb_t)t[2 * i] + (emvn_limb_t)sq;
        t[2 * i] = (emvn_limb_t)c;
        c = (c >> LB) + (emvn_dlimb_t)t[2 * i + 1] + (emvn_limb_t)(sq >> LB);
        t[2 * i + 1] = (emvn_limb_t)c;
        c >>= LB;
    }
    t[2 * s] = 0;  // a^2 < n^2 < R^2: nothing carries out (top and c are 0)
    redc_in_place(r, t, m);
}

// x = 2 x mod n (x < n); t has s limbs.
static void mod_double(emvn_limb_t *x, const mont_t *m, emvn_limb_t *t) {
    const size_t s = m->s;
    emvn_limb_t top = 0;
    for (size_t j = 0; j < s; j++) {
        emvn_limb_t v = x[j];
        x[j] = (emvn_limb_t)((emvn_limb_t)(v << 1) | top);
        top = (emvn_limb_t)(v >> (LB - 1));
    }
    emvn_limb_t borrow = sub_n(t, x, m->n, s);
    // 2x - n is right when 2x carried out (top) or the subtraction did not borrow.
    emvn_limb_t keep = (emvn_limb_t)(top | (borrow ^ 1));
    select_n(x, t, x, (emvn_limb_t)(0 - keep), s);
}

// R^2 mod n into r2 (and R mod n into one); t has 2s + 2 limbs.
static void mont_setup(const mont_t *m, emvn_limb_t *r2, emvn_limb_t *one, emvn_limb_t *t) {
    const size_t s = m->s;
    int bits = bit_length(m->n, s);
    // one = 2^(bits - 1) < n, doubled up to 2^(s LB) = R.
    memset(one, 0, s * sizeof(emvn_limb_t));
    one[(bits - 1) / LB] = (emvn_limb_t)((emvn_limb_t)1 << ((bits - 1) % LB));
    for (int i = bits - 1; i < (int)(s * LB); i++) {
        mod_double(one, m, t);
    }
    // R 2^k mod n, then j squarings: R 2^(k 2^j) with k 2^j = s LB, i.e. R^2.
    size_t k = s * LB;
    int j = 0;
    while ((k & 1) == 0 && k > 1) {
        k >>= 1;
        j++;
    }
    memcpy(r2, one, s * sizeof(emvn_limb_t));
    for (size_t i = 0; i < k; i++) {
        mod_double(r2, m, t);
    }
    for (int i = 0; i < j; i++) {
        mont_sqr(r2, r2, m, t);
    }
}

// r = x^e in the Montgomery domain (x and r in Montgomery form), the fixed
// 4-bit window over all es limbs of e; one = R mod n. work: EMVN_EXP_WORK(s).
static void mont_exp_ct(emvn_limb_t *r, const emvn_limb_t *x, const emvn_limb_t *e, size_t es, const emvn_limb_t *one,
    const mont_t *m, emvn_limb_t *work) {
    const size_t s = m->s;
    emvn_limb_t *table = work;          // 16 s
    emvn_limb_t *acc = table + 16 * s;  // s
    emvn_limb_t *sel = acc + s;         // s
    emvn_limb_t *t = sel + s;           // 2s + 4
    memcpy(table, one, s * sizeof(emvn_limb_t));
    memcpy(table + s, x, s * sizeof(emvn_limb_t));
    for (size_t i = 2; i < 16; i++) {
        mont_mul(table + i * s, table + (i - 1) * s, x, m, t);
    }
    memcpy(acc, one, s * sizeof(emvn_limb_t));
    size_t windows = es * LB / 4;
    for (size_t w = windows; w-- > 0;) {
        if (w != windows - 1) {
            for (int k = 0; k < 4; k++) {
                mont_sqr(acc, acc, m, t);
            }
        }
        uint32_t digit = (uint32_t)(e[(w * 4) / LB] >> ((w * 4) % LB)) & 15;
        memset(sel, 0, s * sizeof(emvn_limb_t));
        for (uint32_t k = 0; k < 16; k++) {
            // mask all ones when k == digit, without a comparison
            emvn_limb_t mask = (emvn_limb_t)(0 - (emvn_limb_t)(((k ^ digit) - 1) >> 31));
            const emvn_limb_t *row = table + k * s;
            for (size_t j = 0; j < s; j++) {
                sel[j] |= (emvn_limb_t)(row[j] & mask);
            }
        }
        mont_mul(acc, acc, sel, m, t);
    }
    memcpy(r, acc, s * sizeof(emvn_limb_t));
}

// r = x^e, square-and-multiply over the bits of a public exponent.
static void mont_exp_public(emvn_limb_t *r, const emvn_limb_t *x, const emvn_limb_t *e, size_t es,
    const emvn_limb_t *one, const mont_t *m, emvn_limb_t *t) {
    const size_t s = m->s;
    int bits = bit_length(e, es);
    memcpy(r, one, s * sizeof(emvn_limb_t));
    for (int i = bits - 1; i >= 0; i--) {
        mont_sqr(r, r, m, t);
        if ((e[i / LB] >> (i % LB)) & 1) {
            mont_mul(r, r, x, m, t);
        }
    }
}

static int mont_init(mont_t *m, const emvn_limb_t *n, size_t s) {
    if (s == 0 || (n[0] & 1) == 0 || (s == 1 && n[0] == 1)) {
        return EMVN_EVEN_MODULUS;
    }
    m->n = n;
    m->s = s;
    m->n0inv = neg_inverse(n[0]);
    return EMVN_OK;
}

static int compare(const emvn_limb_t *a, const emvn_limb_t *b, size_t s) {
    // -1, 0, 1; not constant-time (public values only).
    for (size_t i = s; i-- > 0;) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}

int emvn_powmod_public(uint8_t *out, const uint8_t *base, size_t base_len, const uint8_t *exp, size_t exp_len,
    const uint8_t *mod, size_t mod_len, emvn_limb_t *work) {
    size_t s = emvn_limbs_for(mod, mod_len);
    size_t es = emvn_limbs_for(exp, exp_len);
    if (s > EMVN_MAX_LIMBS || es > EMVN_MAX_LIMBS) {
        return EMVN_TOO_LARGE;
    }
    if (es == 0) {
        es = 1;
    }
    emvn_limb_t *n = work;
    emvn_limb_t *x = n + s;
    emvn_limb_t *e = x + s;
    emvn_limb_t *r2 = e + es;
    emvn_limb_t *one = r2 + s;
    emvn_limb_t *acc = one + s;
    emvn_limb_t *t = acc + s;  // 2s + 2
    mont_t m;
    int err = from_bytes(n, s, mod, mod_len);
    if (err == EMVN_OK) {
        err = mont_init(&m, n, s);
    }
    if (err == EMVN_OK) {
        err = from_bytes(x, s, base, base_len);
    }
    if (err == EMVN_OK && compare(x, n, s) >= 0) {
        err = EMVN_INPUT_RANGE;
    }
    if (err == EMVN_OK) {
        err = from_bytes(e, es, exp, exp_len);
    }
    if (err != EMVN_OK) {
        return err;
    }
    mont_setup(&m, r2, one, t);
    mont_mul(x, x, r2, &m, t);             // x R
    mont_exp_public(acc, x, e, es, one, &m, t);
    memset(x, 0, s * sizeof(emvn_limb_t));
    x[0] = 1;
    mont_mul(acc, acc, x, &m, t);          // out of the Montgomery domain
    return to_bytes(out, mod_len, acc, s);
}

// One CRT half: r = c^d mod n (c of 2s limbs below n R); work as mont_exp_ct's
// plus 3s + (2s + 1) limbs. Leaves R^2 mod n in r2.
static void crt_half(emvn_limb_t *r, emvn_limb_t *r2, const emvn_limb_t *c, const emvn_limb_t *d, const mont_t *m,
    emvn_limb_t *work) {
    const size_t s = m->s;
    emvn_limb_t *one = work;          // s
    emvn_limb_t *x = one + s;         // s
    emvn_limb_t *t = x + s;           // 2s + 2
    emvn_limb_t *ew = t + 2 * s + 2;  // EMVN_EXP_WORK(s)
    mont_setup(m, r2, one, t);
    mont_redc(x, c, m, t);            // c R^-1
    mont_mul(x, x, r2, m, t);         // c
    mont_mul(x, x, r2, m, t);         // c R
    mont_exp_ct(r, x, d, s, one, m, ew);  // c^d R
}

int emvn_rsa_crt(uint8_t *out, size_t out_len, const uint8_t *c, size_t c_len, const uint8_t *p, size_t p_len,
    const uint8_t *q, size_t q_len, const uint8_t *dp, size_t dp_len, const uint8_t *dq, size_t dq_len,
    const uint8_t *qinv, size_t qinv_len, emvn_limb_t *work) {
    size_t sp = emvn_limbs_for(p, p_len);
    size_t sq = emvn_limbs_for(q, q_len);
    size_t s = sp > sq ? sp : sq;  // R = 2^(s LB) > p, q, so c < pq < pR and < qR
    if (s > EMVN_MAX_LIMBS / 2) {
        return EMVN_TOO_LARGE;
    }
    emvn_limb_t *P = work;              // s
    emvn_limb_t *Q = P + s;             // s
    emvn_limb_t *D = Q + s;             // s: dp, then dq, then qinv
    emvn_limb_t *m1 = D + s;            // s
    emvn_limb_t *C = m1 + s;            // 2s + 2: c, then the result
    emvn_limb_t *r2 = C + 2 * s + 2;    // 2s + 2 (s used): R^2 mod p
    emvn_limb_t *m2 = r2 + 2 * s + 2;   // 2s + 2 (s used)
    emvn_limb_t *rest = m2 + 2 * s + 2; // EMVN_EXP_WORK(s) + 3s + 2 > crt_half's needs
    mont_t mp, mq;
    int err = from_bytes(P, s, p, p_len);
    if (err == EMVN_OK) {
        err = from_bytes(Q, s, q, q_len);
    }
    if (err == EMVN_OK) {
        err = mont_init(&mp, P, s);
    }
    if (err == EMVN_OK) {
        err = mont_init(&mq, Q, s);
    }
    if (err == EMVN_OK) {
        err = from_bytes(C, 2 * s, c, c_len);
    }
    if (err == EMVN_OK) {
        err = from_bytes(D, s, dq, dq_len);
    }
    if (err != EMVN_OK) {
        return err == EMVN_TOO_LARGE ? EMVN_INPUT_RANGE : err;
    }
    // m2 = c^dq mod q (Montgomery form), then out of it.
    crt_half(m2, r2, C, D, &mq, rest);
    emvn_limb_t *unit = m1;
    memset(unit, 0, s * sizeof(emvn_limb_t));
    unit[0] = 1;
    emvn_limb_t *t = rest;  // 2s + 2
    mont_mul(m2, m2, unit, &mq, t);
    // m1 = c^dp mod p, in Montgomery form (m1 R).
    err = from_bytes(D, s, dp, dp_len);
    if (err != EMVN_OK) {
        return EMVN_INPUT_RANGE;
    }
    crt_half(m1, r2, C, D, &mp, rest);
    // h = qinv (m1 - m2) mod p: (m1 R - m2 R) mod p, then times qinv R^-1.
    emvn_limb_t *m2p = C;  // s
    mont_mul(m2p, m2, r2, &mp, t);  // m2 R mod p (m2 < q < R, r2 < p)
    emvn_limb_t *diff = C + s;      // s
    emvn_limb_t borrow = sub_n(diff, m1, m2p, s);
    // diff + p where the subtraction borrowed: add p under a mask.
    {
        emvn_dlimb_t carry = 0;
        emvn_limb_t mask = (emvn_limb_t)(0 - borrow);
        for (size_t j = 0; j < s; j++) {
            carry += (emvn_dlimb_t)diff[j] + (emvn_limb_t)(P[j] & mask);
            diff[j] = (emvn_limb_t)carry;
            carry >>= LB;
        }
    }
    err = from_bytes(D, s, qinv, qinv_len);
    if (err != EMVN_OK) {
        return EMVN_INPUT_RANGE;
    }
    emvn_limb_t *h = m1;
    mont_mul(h, diff, D, &mp, t);   // (m1 - m2) qinv mod p
    // out = m2 + h q (below pq).
    emvn_limb_t *res = C;           // 2s + 1
    memset(res, 0, (2 * s + 1) * sizeof(emvn_limb_t));
    for (size_t i = 0; i < s; i++) {
        emvn_dlimb_t carry = 0;
        emvn_limb_t hi = h[i];
        for (size_t j = 0; j < s; j++) {
            carry += (emvn_dlimb_t)hi * Q[j] + res[i + j];
            res[i + j] = (emvn_limb_t)carry;
            carry >>= LB;
        }
        res[i + s] = (emvn_limb_t)carry;
    }
    emvn_dlimb_t carry = 0;
    for (size_t j = 0; j < 2 * s + 1; j++) {
        carry += (emvn_dlimb_t)res[j] + (j < s ? m2[j] : 0);
        res[j] = (emvn_limb_t)carry;
        carry >>= LB;
    }
    return to_bytes(out, out_len, res, 2 * s + 1);
}

// DES and TDEA blocks (FIPS 46-3, NIST SP 800-67) for emvkit's token
// firmware: the same algorithm, key-schedule layout and bit-swap networks as
// the pure-Python firmware/crypto/des.py, in C.
//
// Round keys are "cooked" as des.py cooks them: each 48-bit round key is two
// words, (g1 g3 g5 g7) and (g2 g4 g6 g8), one 6-bit group per byte; both
// halves of the block are kept rotated left by one bit so the expansion E is
// free. SP[i] is S-box i+1 merged with the P permutation (generated from
// des.py's tables).
//
// Timing: the key schedule and the block function run the same
// instructions for every key and block; the SP look-ups use secret indices,
// which is constant-time only where a memory read takes the same time at
// every address (the Cortex-M0+/M3 class with SRAM or zero-wait-state flash
// and no data cache); with a data cache or a flash cache in front of the
// table it is not.

#include <string.h>

#include "emvnative.h"

#pragma GCC optimize("O2")

static const uint32_t SP[8][64] = {
    {
        0x01010400u, 0x00000000u, 0x00010000u, 0x01010404u, 0x01010004u, 0x00010404u,
        0x00000004u, 0x00010000u, 0x00000400u, 0x01010400u, 0x01010404u, 0x00000400u,
        0x01000404u, 0x01010004u, 0x01000000u, 0x00000004u, 0x00000404u, 0x01000400u,
        0x01000400u, 0x00010400u, 0x00010400u, 0x01010000u, 0x01010000u, 0x01000404u,
        0x00010004u, 0x01000004u, 0x01000004u, 0x00010004u, 0x00000000u, 0x00000404u,
        0x00010404u, 0x01000000u, 0x00010000u, 0x01010404u, 0x00000004u, 0x01010000u,
        0x01010400u, 0x01000000u, 0x01000000u, 0x00000400u, 0x01010004u, 0x00010000u,
        0x00010400u, 0x01000004u, 0x00000400u, 0x00000004u, 0x01000404u, 0x00010404u,
        0x01010404u, 0x00010004u, 0x01010000u, 0x01000404u, 0x01000004u, 0x00000404u,
        0x00010404u, 0x01010400u, 0x00000404u, 0x01000400u, 0x01000400u, 0x00000000u,
        0x00010004u, 0x00010400u, 0x00000000u, 0x01010004u,
    },
    {
        0x80108020u, 0x80008000u, 0x00008000u, 0x00108020u, 0x00100000u, 0x00000020u,
        0x80100020u, 0x80008020u, 0x80000020u, 0x80108020u, 0x80108000u, 0x80000000u,
        0x80008000u, 0x00100000u, 0x00000020u, 0x80100020u, 0x00108000u, 0x00100020u,
        0x80008020u, 0x00000000u, 0x80000000u, 0x00008000u, 0x00108020u, 0x80100000u,
        0x00100020u, 0x80000020u, 0x00000000u, 0x00108000u, 0x00008020u, 0x80108000u,
        0x80100000u, 0x00008020u, 0x00000000u, 0x00108020u, 0x80100020u, 0x00100000u,
        0x80008020u, 0x80100000u, 0x80108000u, 0x00008000u, 0x80100000u, 0x80008000u,
        0x00000020u, 0x80108020u, 0x00108020u, 0x00000020u, 0x00008000u, 0x80000000u,
        0x00008020u, 0x80108000u, 0x00100000u, 0x80000020u, 0x00100020u, 0x80008020u,
        0x80000020u, 0x00100020u, 0x00108000u, 0x00000000u, 0x80008000u, 0x00008020u,
        0x80000000u, 0x80100020u, 0x80108020u, 0x00108000u,
    },
    {
        0x00000208u, 0x08020200u, 0x00000000u, 0x08020008u, 0x08000200u, 0x00000000u,
        0x00020208u, 0x08000200u, 0x00020008u, 0x08000008u, 0x08000008u, 0x00020000u,
        0x08020208u, 0x00020008u, 0x08020000u, 0x00000208u, 0x08000000u, 0x00000008u,
        0x08020200u, 0x00000200u, 0x00020200u, 0x08020000u, 0x08020008u, 0x00020208u,
        0x08000208u, 0x00020200u, 0x00020000u, 0x08000208u, 0x00000008u, 0x08020208u,
        0x00000200u, 0x08000000u, 0x08020200u, 0x08000000u, 0x00020008u, 0x00000208u,
        0x00020000u, 0x08020200u, 0x08000200u, 0x00000000u, 0x00000200u, 0x00020008u,
        0x08020208u, 0x08000200u, 0x08000008u, 0x00000200u, 0x00000000u, 0x08020008u,
        0x08000208u, 0x00020000u, 0x08000000u, 0x08020208u, 0x00000008u, 0x00020208u,
        0x00020200u, 0x08000008u, 0x08020000u, 0x08000208u, 0x00000208u, 0x08020000u,
        0x00020208u, 0x00000008u, 0x08020008u, 0x00020200u,
    },
    {
        0x00802001u, 0x00002081u, 0x00002081u, 0x00000080u, 0x00802080u, 0x00800081u,
        0x00800001u, 0x00002001u, 0x00000000u, 0x00802000u, 0x00802000u, 0x00802081u,
        0x00000081u, 0x00000000u, 0x00800080u, 0x00800001u, 0x00000001u, 0x00002000u,
        0x00800000u, 0x00802001u, 0x00000080u, 0x00800000u, 0x00002001u, 0x00002080u,
        0x00800081u, 0x00000001u, 0x00002080u, 0x00800080u, 0x00002000u, 0x00802080u,
        0x00802081u, 0x00000081u, 0x00800080u, 0x00800001u, 0x00802000u, 0x00802081u,
        0x00000081u, 0x00000000u, 0x00000000u, 0x00802000u, 0x00002080u, 0x00800080u,
        0x00800081u, 0x00000001u, 0x00802001u, 0x00002081u, 0x00002081u, 0x00000080u,
        0x00802081u, 0x00000081u, 0x00000001u, 0x00002000u, 0x00800001u, 0x00002001u,
        0x00802080u, 0x00800081u, 0x00002001u, 0x00002080u, 0x00800000u, 0x00802001u,
        0x00000080u, 0x00800000u, 0x00002000u, 0x00802080u,
    },
    {
        0x00000100u, 0x02080100u, 0x02080000u, 0x42000100u, 0x00080000u, 0x00000100u,
        0x40000000u, 0x02080000u, 0x40080100u, 0x00080000u, 0x02000100u, 0x40080100u,
        0x42000100u, 0x42080000u, 0x00080100u, 0x40000000u, 0x02000000u, 0x40080000u,
        0x40080000u, 0x00000000u, 0x40000100u, 0x42080100u, 0x42080100u, 0x02000100u,
        0x42080000u, 0x40000100u, 0x00000000u, 0x42000000u, 0x02080100u, 0x02000000u,
        0x42000000u, 0x00080100u, 0x00080000u, 0x42000100u, 0x00000100u, 0x02000000u,
        0x40000000u, 0x02080000u, 0x42000100u, 0x40080100u, 0x02000100u, 0x40000000u,
        0x42080000u, 0x02080100u, 0x40080100u, 0x00000100u, 0x02000000u, 0x42080000u,
        0x42080100u, 0x00080100u, 0x42000000u, 0x42080100u, 0x02080000u, 0x00000000u,
        0x40080000u, 0x42000000u, 0x00080100u, 0x02000100u, 0x40000100u, 0x00080000u,
        0x00000000u, 0x40080000u, 0x02080100u, 0x40000100u,
    },
    {
        0x20000010u, 0x20400000u, 0x00004000u, 0x20404010u, 0x20400000u, 0x00000010u,
        0x20404010u, 0x00400000u, 0x20004000u, 0x00404010u, 0x00400000u, 0x20000010u,
        0x00400010u, 0x20004000u, 0x20000000u, 0x00004010u, 0x00000000u, 0x00400010u,
        0x20004010u, 0x00004000u, 0x00404000u, 0x20004010u, 0x00000010u, 0x20400010u,
        0x20400010u, 0x00000000u, 0x00404010u, 0x20404000u, 0x00004010u, 0x00404000u,
        0x20404000u, 0x20000000u, 0x20004000u, 0x00000010u, 0x20400010u, 0x00404000u,
        0x20404010u, 0x00400000u, 0x00004010u, 0x20000010u, 0x00400000u, 0x20004000u,
        0x20000000u, 0x00004010u, 0x20000010u, 0x20404010u, 0x00404000u, 0x20400000u,
        0x00404010u, 0x20404000u, 0x00000000u, 0x20400010u, 0x00000010u, 0x00004000u,
        0x20400000u, 0x00404010u, 0x00004000u, 0x00400010u, 0x20004010u, 0x00000000u,
        0x20404000u, 0x20000000u, 0x00400010u, 0x20004010u,
    },
    {
        0x00200000u, 0x04200002u, 0x04000802u, 0x00000000u, 0x00000800u, 0x04000802u,
        0x00200802u, 0x04200800u, 0x04200802u, 0x00200000u, 0x00000000u, 0x04000002u,
        0x00000002u, 0x04000000u, 0x04200002u, 0x00000802u, 0x04000800u, 0x00200802u,
        0x00200002u, 0x04000800u, 0x04000002u, 0x04200000u, 0x04200800u, 0x00200002u,
        0x04200000u, 0x00000800u, 0x00000802u, 0x04200802u, 0x00200800u, 0x00000002u,
        0x04000000u, 0x00200800u, 0x04000000u, 0x00200800u, 0x00200000u, 0x04000802u,
        0x04000802u, 0x04200002u, 0x04200002u, 0x00000002u, 0x00200002u, 0x04000000u,
        0x04000800u, 0x00200000u, 0x04200800u, 0x00000802u, 0x00200802u, 0x04200800u,
        0x00000802u, 0x04000002u, 0x04200802u, 0x04200000u, 0x00200800u, 0x00000000u,
        0x00000002u, 0x04200802u, 0x00000000u, 0x00200802u, 0x04200000u, 0x00000800u,
        0x04000002u, 0x04000800u, 0x00000800u, 0x00200002u,
    },
    {
        0x10001040u, 0x00001000u, 0x00040000u, 0x10041040u, 0x10000000u, 0x10001040u,
        0x00000040u, 0x10000000u, 0x00040040u, 0x10040000u, 0x10041040u, 0x00041000u,
        0x10041000u, 0x00041040u, 0x00001000u, 0x00000040u, 0x10040000u, 0x10000040u,
        0x10001000u, 0x00001040u, 0x00041000u, 0x00040040u, 0x10040040u, 0x10041000u,
        0x00001040u, 0x00000000u, 0x00000000u, 0x10040040u, 0x10000040u, 0x10001000u,
        0x00041040u, 0x00040000u, 0x00041040u, 0x00040000u, 0x10041000u, 0x00001000u,
        0x00000040u, 0x10040040u, 0x00001000u, 0x00041040u, 0x10001000u, 0x00000040u,
        0x10000040u, 0x10040000u, 0x10040040u, 0x10000000u, 0x00040000u, 0x10001040u,
        0x00000000u, 0x10041040u, 0x00040040u, 0x10000040u, 0x10040000u, 0x10001000u,
        0x10001040u, 0x00000000u, 0x10041040u, 0x00041000u, 0x00041000u, 0x00001040u,
        0x00001040u, 0x00040040u, 0x10000000u, 0x10041000u,
    },
};

static const uint8_t PC1[56] = {
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
    10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
    63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
    14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
};

static const uint8_t PC2[48] = {
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
    23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
    44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
};

static const uint8_t SHIFTS[16] = {1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1};

// Output bit i (1 = most significant) is input bit table[i-1] of a width-bit
// value (setup only).
static uint64_t permute(uint64_t v, const uint8_t *table, int count, int width) {
    uint64_t out = 0;
    for (int i = 0; i < count; i++) {
        out = (out << 1) | ((v >> (width - table[i])) & 1);
    }
    return out;
}

void emvn_des_round_keys(uint32_t *out, const uint8_t *key8) {
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) {
        k = (k << 8) | key8[i];
    }
    uint64_t cd = permute(k, PC1, 56, 64);
    uint32_t c = (uint32_t)(cd >> 28);
    uint32_t d = (uint32_t)cd & 0x0FFFFFFFu;
    for (int r = 0; r < 16; r++) {
        int s = SHIFTS[r];
        c = ((c << s) | (c >> (28 - s))) & 0x0FFFFFFFu;
        d = ((d << s) | (d >> (28 - s))) & 0x0FFFFFFFu;
        uint64_t kk = permute(((uint64_t)c << 28) | d, PC2, 48, 56);
        uint32_t g[8];
        for (int j = 0; j < 8; j++) {
            g[j] = (uint32_t)(kk >> (42 - 6 * j)) & 63u;
        }
        out[2 * r] = (g[0] << 24) | (g[2] << 16) | (g[4] << 8) | g[6];
        out[2 * r + 1] = (g[1] << 24) | (g[3] << 16) | (g[5] << 8) | g[7];
    }
    k = cd = 0;
    c = d = 0;
}

void emvn_des_reverse(uint32_t *out, const uint32_t *in) {
    // Decryption takes the round keys in reverse order (pairs kept together).
    for (int i = 0; i < 16; i++) {
        out[2 * i] = in[30 - 2 * i];
        out[2 * i + 1] = in[31 - 2 * i];
    }
}

#define ROR4(x) (((x) >> 4) | ((x) << 28))

void emvn_des_crypt(const uint32_t *ks, size_t words, const uint8_t *in, uint8_t *out) {
    uint32_t left = ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
    uint32_t right = ((uint32_t)in[4] << 24) | ((uint32_t)in[5] << 16) | ((uint32_t)in[6] << 8) | in[7];
    uint32_t w;
    // Initial permutation as a bit-swap network; both halves end rotated left by one.
    w = ((left >> 4) ^ right) & 0x0F0F0F0Fu;
    right ^= w;
    left ^= w << 4;
    w = ((left >> 16) ^ right) & 0x0000FFFFu;
    right ^= w;
    left ^= w << 16;
    w = ((right >> 2) ^ left) & 0x33333333u;
    left ^= w;
    right ^= w << 2;
    w = ((right >> 8) ^ left) & 0x00FF00FFu;
    left ^= w;
    right ^= w << 8;
    right = (right << 1) | (right >> 31);
    w = (left ^ right) & 0xAAAAAAAAu;
    left ^= w;
    right ^= w;
    left = (left << 1) | (left >> 31);

    for (size_t i = 0; i < words;) {
        size_t end = i + 32;
        for (; i < end; i += 4) {
            w = ROR4(right) ^ ks[i];
            uint32_t f = SP[6][w & 63] | SP[4][(w >> 8) & 63] | SP[2][(w >> 16) & 63] | SP[0][(w >> 24) & 63];
            w = right ^ ks[i + 1];
            left ^= f | SP[7][w & 63] | SP[5][(w >> 8) & 63] | SP[3][(w >> 16) & 63] | SP[1][(w >> 24) & 63];
            w = ROR4(left) ^ ks[i + 2];
            f = SP[6][w & 63] | SP[4][(w >> 8) & 63] | SP[2][(w >> 16) & 63] | SP[0][(w >> 24) & 63];
            w = left ^ ks[i + 3];
            right ^= f | SP[7][w & 63] | SP[5][(w >> 8) & 63] | SP[3][(w >> 16) & 63] | SP[1][(w >> 24) & 63];
        }
        if (i < words) {
            // Between TDEA passes: R16 || L16 is the next pass's input (IP(FP(x)) = x).
            w = left;
            left = right;
            right = w;
        }
    }

    // Final permutation of R16 || L16: the network above backwards.
    right = (right << 31) | (right >> 1);
    w = (left ^ right) & 0xAAAAAAAAu;
    left ^= w;
    right ^= w;
    left = (left << 31) | (left >> 1);
    w = ((left >> 8) ^ right) & 0x00FF00FFu;
    right ^= w;
    left ^= w << 8;
    w = ((left >> 2) ^ right) & 0x33333333u;
    right ^= w;
    left ^= w << 2;
    w = ((right >> 16) ^ left) & 0x0000FFFFu;
    left ^= w;
    right ^= w << 16;
    w = ((right >> 4) ^ left) & 0x0F0F0F0Fu;
    left ^= w;
    right ^= w << 4;
    out[0] = (uint8_t)(right >> 24);
    out[1] = (uint8_t)(right >> 16);
    out[2] = (uint8_t)(right >> 8);
    out[3] = (uint8_t)right;
    out[4] = (uint8_t)(left >> 24);
    out[5] = (uint8_t)(left >> 16);
    out[6] = (uint8_t)(left >> 8);
    out[7] = (uint8_t)left;
}

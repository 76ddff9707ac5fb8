// SM3 (GB/T 32905-2016, GM/T 0004-2012): the compression function CF with
// its message expansion, over whole 64-byte blocks, for firmware/crypto/sm3.py
// (which keeps the buffering and the padding). The same instructions for
// every message and state: no table look-up indexed by data, no branch on it.

#include <string.h>

#include "emvnative.h"

#pragma GCC optimize("O2")

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define P0(x) ((x) ^ ROL((x), 9) ^ ROL((x), 17))
#define P1(x) ((x) ^ ROL((x), 15) ^ ROL((x), 23))

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void compress(uint32_t v[8], const uint8_t *block) {
    uint32_t w[68];
    for (int j = 0; j < 16; j++) {
        w[j] = load_be32(block + 4 * j);
    }
    for (int j = 16; j < 68; j++) {
        uint32_t x = w[j - 16] ^ w[j - 9] ^ ROL(w[j - 3], 15);
        w[j] = P1(x) ^ ROL(w[j - 13], 7) ^ w[j - 6];
    }
    uint32_t a = v[0], b = v[1], c = v[2], d = v[3], e = v[4], f = v[5], g = v[6], h = v[7];
    for (int j = 0; j < 64; j++) {
        // T_j <<< (j mod 32): 79CC4519 for j < 16, 7A879D8A after (§4.2)
        uint32_t t = j < 16 ? 0x79CC4519u : 0x7A879D8Au;
        int r = j & 31;
        uint32_t tj = r ? ROL(t, r) : t;
        uint32_t a12 = ROL(a, 12);
        uint32_t ss1 = ROL(a12 + e + tj, 7);
        uint32_t ss2 = ss1 ^ a12;
        uint32_t ff, gg;
        if (j < 16) {  // j is the round number, not data
            ff = a ^ b ^ c;
            gg = e ^ f ^ g;
        } else {
            ff = (a & b) | (a & c) | (b & c);
            gg = (e & f) | (~e & g);
        }
        uint32_t tt1 = ff + d + ss2 + (w[j] ^ w[j + 4]);
        uint32_t tt2 = gg + h + ss1 + w[j];
        d = c;
        c = ROL(b, 9);
        b = a;
        a = tt1;
        h = g;
        g = ROL(f, 19);
        f = e;
        e = P0(tt2);
    }
    v[0] ^= a;
    v[1] ^= b;
    v[2] ^= c;
    v[3] ^= d;
    v[4] ^= e;
    v[5] ^= f;
    v[6] ^= g;
    v[7] ^= h;
    volatile uint32_t *vw = w;
    for (int j = 0; j < 68; j++) {
        vw[j] = 0;
    }
}

void emvn_sm3_compress(uint8_t state[EMVN_SM3_BYTES], const uint8_t *blocks, size_t nblocks) {
    uint32_t v[8];
    for (int i = 0; i < 8; i++) {
        v[i] = load_be32(state + 4 * i);
    }
    for (size_t k = 0; k < nblocks; k++) {
        compress(v, blocks + 64 * k);
    }
    for (int i = 0; i < 8; i++) {
        state[4 * i] = (uint8_t)(v[i] >> 24);
        state[4 * i + 1] = (uint8_t)(v[i] >> 16);
        state[4 * i + 2] = (uint8_t)(v[i] >> 8);
        state[4 * i + 3] = (uint8_t)v[i];
    }
}

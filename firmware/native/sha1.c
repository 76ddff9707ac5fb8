// SHA-1 (FIPS 180-4 §6.1) for emvkit's token firmware: the QEMU ports'
// hashlib has no SHA-1, and the pure-Python firmware/crypto/sha1.py costs
// millions of instructions a transaction there.
//
// One-shot: the whole message in, the 20-byte digest out. The message
// schedule is kept as a rolling window of 16 words (§6.1.3 note), so the
// state on the stack is 16 + 5 words and a 64-byte padding block.
//
// Timing: the same instructions for every message of a given length; no
// table look-ups, no branch on the data. The message may be key material
// (ICC Master Key derivation option B, EMV Book 2 Annex A1.4.2): the stack
// copies of it are zeroed before returning.

#include <string.h>

#include "emvnative.h"

#pragma GCC optimize("O2")

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void wipe(void *p, size_t n) {
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--) {
        *v++ = 0;
    }
}

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// One 64-byte block into the hash value h (§6.1.2 steps 1-4).
static void compress(uint32_t h[5], const uint8_t *block) {
    uint32_t w[16];
    for (int t = 0; t < 16; t++) {
        w[t] = load_be32(block + 4 * t);
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t wt;
        if (t < 16) {
            wt = w[t];
        } else {
            // W_t = ROTL1(W_t-3 ^ W_t-8 ^ W_t-14 ^ W_t-16), indices mod 16
            uint32_t x = w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15];
            wt = ROTL(x, 1);
            w[t & 15] = wt;
        }
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) ^ (~b & d);  // Ch
            k = 0x5a827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;  // Parity
            k = 0x6ed9eba1u;
        } else if (t < 60) {
            f = (b & c) ^ (b & d) ^ (c & d);  // Maj
            k = 0x8f1bbcdcu;
        } else {
            f = b ^ c ^ d;  // Parity
            k = 0xca62c1d6u;
        }
        uint32_t tmp = ROTL(a, 5) + f + e + k + wt;
        e = d;
        d = c;
        c = ROTL(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    wipe(w, sizeof(w));
}

void emvn_sha1(uint8_t out[EMVN_SHA1_BYTES], const uint8_t *data, size_t len) {
    uint32_t h[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u};  // §5.3.1
    size_t full = len & ~(size_t)63;
    for (size_t i = 0; i < full; i += 64) {
        compress(h, data + i);
    }
    // Padding (§5.1.1): the rest, a 1 bit, zeros, then the length in bits
    // as a 64-bit big-endian number; one or two blocks.
    uint8_t last[128];
    size_t rest = len - full;
    memset(last, 0, sizeof(last));
    if (rest) {
        memcpy(last, data + full, rest);
    }
    last[rest] = 0x80;
    size_t end = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len << 3;
    store_be32(last + end - 8, (uint32_t)(bits >> 32));
    store_be32(last + end - 4, (uint32_t)bits);
    compress(h, last);
    if (end == 128) {
        compress(h, last + 64);
    }
    for (int i = 0; i < 5; i++) {
        store_be32(out + 4 * i, h[i]);
    }
    wipe(last, sizeof(last));
    wipe(h, sizeof(h));
}

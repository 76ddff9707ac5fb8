// The MicroPython module _emvnative: native arithmetic for the card's crypto,
// picked by firmware/crypto/provider.py when the image has it.
//
//   rsa_crt(c, p, q, dp, dq, qinv) -> bytes   c^d mod pq by the CRT (len(c) bytes);
//                                             every argument big-endian bytes, c < pq
//   powmod(x, e, n) -> bytes                  x^e mod n (len(n) bytes), n odd, x < n;
//                                             variable time in e: public exponents only
//   des_keys(key) -> (enc, dec)               the key schedules of an 8, 16 or 24-byte
//                                             DES/TDEA key (bytes, opaque)
//   des_ecb(schedule, data) -> bytes          ECB over whole 8-byte blocks
//   des_cbc(schedule, data, iv) -> bytes      CBC encryption over whole blocks
//   sha1(data) -> bytes                       SHA-1 (FIPS 180-4) of any buffer, 20 bytes
//   sm2_mul(k, point) -> bytes                [k]P on sm2p256v1 as x || y (64 bytes): k 32
//                                             bytes big-endian, 1 <= k < n; point x || y
//                                             (64 bytes, checked to be on the curve) or
//                                             None for the base point G
//   sm3_compress(state, blocks) -> bytes      SM3's compression function over whole
//                                             64-byte blocks from the 32-byte chaining
//                                             value; the new one (32 bytes)
//   LIMB_BITS                                 32 (Armv7-M and others) or 16 (ARMv6-M)
//
// Errors: ValueError for a wrong length, an even modulus, an input out of
// range or a point not on the curve. Scratch memory that held key material
// is zeroed before it is freed. What is and is not constant-time: mont.c,
// des.c, sm2.c and sm3.c.

#include <string.h>

#include "py/obj.h"
#include "py/objstr.h"
#include "py/runtime.h"

#include "emvnative.h"

static void wipe(void *p, size_t n) {
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--) {
        *v++ = 0;
    }
}

// Workspace up to this size is on the C stack (a 1024-bit key's CRT needs
// about 2.2 KB with either limb width): a block of that size from the GC
// heap needs that much contiguous free heap, which a fragmented heap may
// not have. Larger keys take it from the heap.
#define LOCAL_WORK_BYTES (2304)
#define LOCAL_WORK_LIMBS (LOCAL_WORK_BYTES / sizeof(emvn_limb_t))

static emvn_limb_t *get_work(emvn_limb_t *local, size_t words) {
    return words <= LOCAL_WORK_LIMBS ? local : m_new(emvn_limb_t, words);
}

static void put_work(emvn_limb_t *local, emvn_limb_t *work, size_t words) {
    wipe(work, words * sizeof(emvn_limb_t));
    if (work != local) {
        m_del(emvn_limb_t, work, words);
    }
}

static void raise_for(int err) {
    switch (err) {
        case EMVN_EVEN_MODULUS:
            mp_raise_ValueError(MP_ERROR_TEXT("modulus must be odd"));
        case EMVN_TOO_LARGE:
            mp_raise_ValueError(MP_ERROR_TEXT("number too large"));
        case EMVN_NOT_ON_CURVE:
            mp_raise_ValueError(MP_ERROR_TEXT("point not on the curve"));
        default:
            mp_raise_ValueError(MP_ERROR_TEXT("input out of range"));
    }
}

static mp_obj_t emvnative_rsa_crt(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t b[6];  // c, p, q, dp, dq, qinv
    for (int i = 0; i < 6; i++) {
        mp_get_buffer_raise(args[i], &b[i], MP_BUFFER_READ);
    }
    size_t sp = emvn_limbs_for(b[1].buf, b[1].len);
    size_t sq = emvn_limbs_for(b[2].buf, b[2].len);
    size_t s = sp > sq ? sp : sq;
    if (s == 0 || s > EMVN_MAX_LIMBS / 2 || b[0].len > EMVN_MAX_BYTES) {
        raise_for(EMVN_TOO_LARGE);
    }
    size_t words = EMVN_CRT_WORK(s);
    emvn_limb_t local[LOCAL_WORK_LIMBS];
    emvn_limb_t *work = get_work(local, words);
    vstr_t vstr;
    vstr_init_len(&vstr, b[0].len);
    int err = emvn_rsa_crt((uint8_t *)vstr.buf, b[0].len, b[0].buf, b[0].len, b[1].buf, b[1].len, b[2].buf, b[2].len,
        b[3].buf, b[3].len, b[4].buf, b[4].len, b[5].buf, b[5].len, work);
    put_work(local, work, words);
    if (err != EMVN_OK) {
        vstr_clear(&vstr);
        raise_for(err);
    }
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(emvnative_rsa_crt_obj, 6, 6, emvnative_rsa_crt);

static mp_obj_t emvnative_powmod(mp_obj_t x_in, mp_obj_t e_in, mp_obj_t n_in) {
    mp_buffer_info_t x, e, n;
    mp_get_buffer_raise(x_in, &x, MP_BUFFER_READ);
    mp_get_buffer_raise(e_in, &e, MP_BUFFER_READ);
    mp_get_buffer_raise(n_in, &n, MP_BUFFER_READ);
    if (n.len == 0 || n.len > EMVN_MAX_BYTES || e.len > EMVN_MAX_BYTES) {
        raise_for(EMVN_TOO_LARGE);
    }
    size_t words = EMVN_POW_WORK(emvn_limbs_for(n.buf, n.len), emvn_limbs_for(e.buf, e.len));
    emvn_limb_t local[LOCAL_WORK_LIMBS];
    emvn_limb_t *work = get_work(local, words);
    vstr_t vstr;
    vstr_init_len(&vstr, n.len);
    int err = emvn_powmod_public((uint8_t *)vstr.buf, x.buf, x.len, e.buf, e.len, n.buf, n.len, work);
    put_work(local, work, words);
    if (err != EMVN_OK) {
        vstr_clear(&vstr);
        raise_for(err);
    }
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_3(emvnative_powmod_obj, emvnative_powmod);

// ---- DES / TDEA ----

#define KS_WORDS (96)  // three passes of 16 rounds, two words a round

static mp_obj_t emvnative_des_keys(mp_obj_t key_in) {
    mp_buffer_info_t key;
    mp_get_buffer_raise(key_in, &key, MP_BUFFER_READ);
    const uint8_t *k = key.buf;
    uint32_t k1[32], k2[32], k3[32], r[32];
    uint32_t enc[KS_WORDS], dec[KS_WORDS];
    size_t words;
    if (key.len == 8) {
        emvn_des_round_keys(enc, k);
        emvn_des_reverse(dec, enc);
        words = 32;
    } else if (key.len == 16 || key.len == 24) {
        // EDE: enc = k1, reverse(k2), k3; dec = reverse(k3), k2, reverse(k1)
        emvn_des_round_keys(k1, k);
        emvn_des_round_keys(k2, k + 8);
        if (key.len == 24) {
            emvn_des_round_keys(k3, k + 16);
        } else {
            memcpy(k3, k1, sizeof(k1));
        }
        memcpy(enc, k1, sizeof(k1));
        emvn_des_reverse(enc + 32, k2);
        memcpy(enc + 64, k3, sizeof(k3));
        emvn_des_reverse(dec, k3);
        memcpy(dec + 32, k2, sizeof(k2));
        emvn_des_reverse(r, k1);
        memcpy(dec + 64, r, sizeof(r));
        words = KS_WORDS;
    } else {
        mp_raise_ValueError(MP_ERROR_TEXT("DES/TDEA key must be 8, 16 or 24 bytes"));
    }
    mp_obj_t out[2] = {
        mp_obj_new_bytes((const byte *)enc, words * 4),
        mp_obj_new_bytes((const byte *)dec, words * 4),
    };
    wipe(k1, sizeof(k1));
    wipe(k2, sizeof(k2));
    wipe(k3, sizeof(k3));
    wipe(r, sizeof(r));
    wipe(enc, sizeof(enc));
    wipe(dec, sizeof(dec));
    return mp_obj_new_tuple(2, out);
}
static MP_DEFINE_CONST_FUN_OBJ_1(emvnative_des_keys_obj, emvnative_des_keys);

// The schedule into ks (aligned); returns its words (32 or 96).
static size_t load_schedule(uint32_t *ks, mp_obj_t ks_in) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(ks_in, &b, MP_BUFFER_READ);
    if (b.len != 32 * 4 && b.len != KS_WORDS * 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("not a DES key schedule"));
    }
    memcpy(ks, b.buf, b.len);
    return b.len / 4;
}

static mp_obj_t emvnative_des_ecb(mp_obj_t ks_in, mp_obj_t data_in) {
    uint32_t ks[KS_WORDS];
    size_t words = load_schedule(ks, ks_in);
    mp_buffer_info_t data;
    mp_get_buffer_raise(data_in, &data, MP_BUFFER_READ);
    if (data.len % 8) {
        mp_raise_ValueError(MP_ERROR_TEXT("DES data must be a multiple of 8 bytes"));
    }
    vstr_t vstr;
    vstr_init_len(&vstr, data.len);
    for (size_t i = 0; i < data.len; i += 8) {
        emvn_des_crypt(ks, words, (const uint8_t *)data.buf + i, (uint8_t *)vstr.buf + i);
    }
    wipe(ks, sizeof(ks));
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_2(emvnative_des_ecb_obj, emvnative_des_ecb);

static mp_obj_t emvnative_des_cbc(mp_obj_t ks_in, mp_obj_t data_in, mp_obj_t iv_in) {
    uint32_t ks[KS_WORDS];
    size_t words = load_schedule(ks, ks_in);
    mp_buffer_info_t data, iv;
    mp_get_buffer_raise(data_in, &data, MP_BUFFER_READ);
    mp_get_buffer_raise(iv_in, &iv, MP_BUFFER_READ);
    if (data.len % 8 || iv.len != 8) {
        mp_raise_ValueError(MP_ERROR_TEXT("CBC data must be whole 8-byte blocks, the IV 8 bytes"));
    }
    vstr_t vstr;
    vstr_init_len(&vstr, data.len);
    uint8_t chain[8], x[8];
    memcpy(chain, iv.buf, 8);
    for (size_t i = 0; i < data.len; i += 8) {
        for (int j = 0; j < 8; j++) {
            x[j] = chain[j] ^ ((const uint8_t *)data.buf)[i + j];
        }
        emvn_des_crypt(ks, words, x, chain);
        memcpy(vstr.buf + i, chain, 8);
    }
    wipe(ks, sizeof(ks));
    wipe(x, sizeof(x));
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_3(emvnative_des_cbc_obj, emvnative_des_cbc);

// ---- SHA-1 ----

static mp_obj_t emvnative_sha1(mp_obj_t data_in) {
    mp_buffer_info_t data;
    mp_get_buffer_raise(data_in, &data, MP_BUFFER_READ);
    uint8_t digest[EMVN_SHA1_BYTES];
    emvn_sha1(digest, data.buf, data.len);
    return mp_obj_new_bytes(digest, sizeof(digest));
}
static MP_DEFINE_CONST_FUN_OBJ_1(emvnative_sha1_obj, emvnative_sha1);

// ---- SM2 ----

static mp_obj_t emvnative_sm2_mul(mp_obj_t k_in, mp_obj_t point_in) {
    mp_buffer_info_t k, point;
    mp_get_buffer_raise(k_in, &k, MP_BUFFER_READ);
    const uint8_t *p = NULL;
    if (point_in != mp_const_none) {
        mp_get_buffer_raise(point_in, &point, MP_BUFFER_READ);
        if (point.len != 64) {
            mp_raise_ValueError(MP_ERROR_TEXT("an SM2 point is x || y, 64 bytes"));
        }
        p = point.buf;
    }
    if (k.len != 32) {
        mp_raise_ValueError(MP_ERROR_TEXT("an SM2 scalar is 32 bytes"));
    }
    uint8_t out[64];
    int err = emvn_sm2_mul(out, k.buf, p);
    if (err != EMVN_OK) {
        raise_for(err);
    }
    return mp_obj_new_bytes(out, sizeof(out));
}
static MP_DEFINE_CONST_FUN_OBJ_2(emvnative_sm2_mul_obj, emvnative_sm2_mul);

// ---- SM3 ----

static mp_obj_t emvnative_sm3_compress(mp_obj_t state_in, mp_obj_t blocks_in) {
    mp_buffer_info_t state, blocks;
    mp_get_buffer_raise(state_in, &state, MP_BUFFER_READ);
    mp_get_buffer_raise(blocks_in, &blocks, MP_BUFFER_READ);
    if (state.len != EMVN_SM3_BYTES || blocks.len % 64) {
        mp_raise_ValueError(MP_ERROR_TEXT("SM3: a 32-byte state and whole 64-byte blocks"));
    }
    uint8_t out[EMVN_SM3_BYTES];
    memcpy(out, state.buf, EMVN_SM3_BYTES);
    emvn_sm3_compress(out, blocks.buf, blocks.len / 64);
    return mp_obj_new_bytes(out, sizeof(out));
}
static MP_DEFINE_CONST_FUN_OBJ_2(emvnative_sm3_compress_obj, emvnative_sm3_compress);

static const mp_rom_map_elem_t emvnative_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__emvnative) },
    { MP_ROM_QSTR(MP_QSTR_rsa_crt), MP_ROM_PTR(&emvnative_rsa_crt_obj) },
    { MP_ROM_QSTR(MP_QSTR_powmod), MP_ROM_PTR(&emvnative_powmod_obj) },
    { MP_ROM_QSTR(MP_QSTR_des_keys), MP_ROM_PTR(&emvnative_des_keys_obj) },
    { MP_ROM_QSTR(MP_QSTR_des_ecb), MP_ROM_PTR(&emvnative_des_ecb_obj) },
    { MP_ROM_QSTR(MP_QSTR_des_cbc), MP_ROM_PTR(&emvnative_des_cbc_obj) },
    { MP_ROM_QSTR(MP_QSTR_sha1), MP_ROM_PTR(&emvnative_sha1_obj) },
    { MP_ROM_QSTR(MP_QSTR_sm2_mul), MP_ROM_PTR(&emvnative_sm2_mul_obj) },
    { MP_ROM_QSTR(MP_QSTR_sm3_compress), MP_ROM_PTR(&emvnative_sm3_compress_obj) },
    { MP_ROM_QSTR(MP_QSTR_LIMB_BITS), MP_ROM_INT(EMVN_LIMB_BITS) },
};
static MP_DEFINE_CONST_DICT(emvnative_globals, emvnative_globals_table);

const mp_obj_module_t emvnative_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&emvnative_globals,
};

MP_REGISTER_MODULE(MP_QSTR__emvnative, emvnative_module);

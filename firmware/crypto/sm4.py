# SM4 block cipher (GB/T 32907-2016, GM/T 0002-2012): 128-bit blocks,
# 128-bit keys, 32 rounds of an unbalanced Feistel network on four 32-bit
# words. ECB and CBC without padding (EMV pads itself), and the CBC-MAC
# over 16-byte blocks (ISO/IEC 9797-1 MAC algorithm 1).
#
# Portable: runs unchanged on CPython and MicroPython. Words are 32-bit, so
# on a 32-bit MicroPython port most intermediate values live on the heap:
# a native SM4 is the way to speed it up there. The round function is one
# table of 256 words (S-box then the linear transform L, GB/T 32907 §6.2)
# and rotations, since L commutes with byte rotations of its input.

_M32 = 0xFFFFFFFF

# S-box (§6.2 (1), Table 1), row by row.
_SBOX = bytes.fromhex(
    "d690e9fecce13db716b614c228fb2c05" "2b679a762abe04c3aa44132649860699"
    "9c4250f491ef987a33540b43edcfac62" "e4b31ca9c908e89580df94fa758f3fa6"
    "4707a7fcf37317ba83593c19e6854fa8" "686b81b27164da8bf8eb0f4b70569d35"
    "1e240e5e6358d1a225227c3b01217887" "d40046579fd327524c3602e7a0c4c89e"
    "eabf8ad240c738b5a3f7f2cef96115a1" "e0ae5da49b341a55ad933230f58cb1e3"
    "1df6e22e8266ca60c02923ab0d534e6f" "d5db3745defd8e2f03ff6a726d6c5b51"
    "8d1baf92bbddbc7f11d95c411f105ad8" "0ac13188a5cd7bbd2d74d012b8e5b4b0"
    "8969974a0c96777e65b9f109c56ec684" "18f07dec3adc4d2079ee5f3ed7cb3948"
)
# System parameter FK and fixed parameters CK (§7.3): byte j of CK_i is
# (4i + j) * 7 mod 256.
_FK = (0xA3B1BAC6, 0x56AA3350, 0x677D9197, 0xB27022DC)
_CK = tuple([(((28 * i) & 255) << 24) | (((28 * i + 7) & 255) << 16) | (((28 * i + 14) & 255) << 8)
             | ((28 * i + 21) & 255) for i in range(32)])


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


# _T[x] = L(S(x) << 24) with L(B) = B ^ B<<<2 ^ B<<<10 ^ B<<<18 ^ B<<<24.
def _l(b: int) -> int:
    return b ^ _rol(b, 2) ^ _rol(b, 10) ^ _rol(b, 18) ^ _rol(b, 24)


_T = tuple([_l(s << 24) for s in _SBOX])


def _tau(x: int) -> int:
    # The S-box on each byte of a word (§6.2 (1)).
    return ((_SBOX[x >> 24] << 24) | (_SBOX[(x >> 16) & 255] << 16) | (_SBOX[(x >> 8) & 255] << 8)
            | _SBOX[x & 255])


def _round_keys(key: bytes) -> list:
    # Key expansion (§7.3): rk_i = K_{i+4} = K_i ^ T'(K_{i+1} ^ K_{i+2} ^ K_{i+3} ^ CK_i)
    # with T' = L'(tau(.)), L'(B) = B ^ B<<<13 ^ B<<<23.
    if len(key) != 16:
        raise ValueError("an SM4 key is 16 bytes, got %d" % len(key))
    k0 = int.from_bytes(key[0:4], "big") ^ _FK[0]
    k1 = int.from_bytes(key[4:8], "big") ^ _FK[1]
    k2 = int.from_bytes(key[8:12], "big") ^ _FK[2]
    k3 = int.from_bytes(key[12:16], "big") ^ _FK[3]
    rk = []
    for i in range(32):
        b = _tau(k1 ^ k2 ^ k3 ^ _CK[i])
        k4 = k0 ^ b ^ _rol(b, 13) ^ _rol(b, 23)
        rk.append(k4)
        k0, k1, k2, k3 = k1, k2, k3, k4
    return rk


def _crypt(rk: list, block: bytes) -> bytes:
    # The 32 rounds (§7.1): X_{i+4} = X_i ^ T(X_{i+1} ^ X_{i+2} ^ X_{i+3} ^ rk_i),
    # then the reverse transform R (the words in the opposite order).
    if len(block) != 16:
        raise ValueError("an SM4 block is 16 bytes, got %d" % len(block))
    t = _T
    x0 = int.from_bytes(block[0:4], "big")
    x1 = int.from_bytes(block[4:8], "big")
    x2 = int.from_bytes(block[8:12], "big")
    x3 = int.from_bytes(block[12:16], "big")
    for i in range(32):
        a = x1 ^ x2 ^ x3 ^ rk[i]
        b0 = t[a >> 24]
        b1 = t[(a >> 16) & 255]
        b2 = t[(a >> 8) & 255]
        b3 = t[a & 255]
        # T(a) = T[a0] ^ T[a1]>>>8 ^ T[a2]>>>16 ^ T[a3]>>>24
        x4 = (x0 ^ b0 ^ ((b1 >> 8) | (b1 << 24)) ^ ((b2 >> 16) | (b2 << 16)) ^ ((b3 >> 24) | (b3 << 8))) & _M32
        x0, x1, x2, x3 = x1, x2, x3, x4
    return x3.to_bytes(4, "big") + x2.to_bytes(4, "big") + x1.to_bytes(4, "big") + x0.to_bytes(4, "big")


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def _check_blocks(data: bytes) -> None:
    if len(data) % 16:
        raise ValueError("SM4 data must be a multiple of 16 bytes, got %d (pad it first)" % len(data))


class SM4:
    # One key's schedule, for any number of blocks. Decryption uses the
    # round keys in reverse order (§7.2).
    __slots__ = ("_enc", "_dec")
    block_size = 16

    def __init__(self, key: bytes) -> None:
        self._enc = _round_keys(bytes(key))
        self._dec = self._enc[::-1]

    def encrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._enc, bytes(block))

    def decrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._dec, bytes(block))

    def ecb_encrypt(self, data: bytes) -> bytes:
        data = bytes(data)
        _check_blocks(data)
        return b"".join([_crypt(self._enc, data[i:i + 16]) for i in range(0, len(data), 16)])

    def ecb_decrypt(self, data: bytes) -> bytes:
        data = bytes(data)
        _check_blocks(data)
        return b"".join([_crypt(self._dec, data[i:i + 16]) for i in range(0, len(data), 16)])

    def cbc_encrypt(self, data: bytes, iv: bytes = bytes(16)) -> bytes:
        data = bytes(data)
        _check_blocks(data)
        _check_iv(iv)
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 16):
            chain = _crypt(self._enc, _xor16(chain, data[i:i + 16]))
            out.append(chain)
        return b"".join(out)

    def cbc_decrypt(self, data: bytes, iv: bytes = bytes(16)) -> bytes:
        data = bytes(data)
        _check_blocks(data)
        _check_iv(iv)
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 16):
            block = data[i:i + 16]
            out.append(_xor16(chain, _crypt(self._dec, block)))
            chain = block
        return b"".join(out)

    def cbc_mac(self, data: bytes) -> bytes:
        # ISO/IEC 9797-1 MAC algorithm 1 over 16-byte blocks: CBC with a
        # zero IV, the last block is the MAC (16 bytes; callers truncate).
        # data must already be padded (pad_method2 for the 80 00.. rule).
        data = bytes(data)
        if not data:
            raise ValueError("nothing to MAC (pad the data first)")
        return self.cbc_encrypt(data)[-16:]


def _check_iv(iv: bytes) -> None:
    if len(iv) != 16:
        raise ValueError("an SM4 IV is 16 bytes, got %d" % len(iv))


def pad_method2(data: bytes) -> bytes:
    # ISO/IEC 9797-1 padding method 2 for 16-byte blocks: one 0x80 byte,
    # then as few zero bytes as reach a multiple of 16.
    data = bytes(data) + b"\x80"
    return data + bytes((16 - len(data) % 16) % 16)


def encrypt_block(key: bytes, block: bytes) -> bytes:
    # One block under a key (the schedule is not kept).
    return SM4(key).encrypt_block(block)


def decrypt_block(key: bytes, block: bytes) -> bytes:
    return SM4(key).decrypt_block(block)

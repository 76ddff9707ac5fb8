# RSA for the card side: the private operation in CRT form and the EMV
# digital signature scheme giving message recovery (EMV Book 2 Annex A2.1,
# ISO/IEC 9796-2 scheme 1 with SHA-1), as used for SDA/DDA/fDDA/CDA
# signatures (Book 2 §5, §6). RSA itself: EMV Book 2 Annex B2.1.
#
# Portable: runs unchanged on CPython and MicroPython (big ints and
# 3-argument pow). MicroPython's pow() has no negative exponents, so the
# modular inverse is computed here.

from . import provider


def _nbytes(n: int) -> int:
    # Byte length of a positive int (MicroPython ints have no bit_length()).
    return (len("%x" % n) + 1) // 2


def _modinv(a: int, m: int) -> int:
    # Inverse of a modulo m (extended Euclid); ValueError if none exists.
    r0, r1 = a % m, m
    s0, s1 = 1, 0
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
    if r0 != 1:
        raise ValueError("not invertible")
    return s0 % m


def rsa_public(data: bytes, e: int, n: bytes) -> bytes:
    # data^e mod n; data must be the modulus length and below the modulus.
    # Output has the modulus length (leading zeros kept).
    k = len(n)
    m = int.from_bytes(bytes(n), "big")
    x = int.from_bytes(bytes(data), "big")
    if len(data) != k or x >= m:
        raise ValueError("input must be %d bytes and less than the modulus" % k)
    return pow(x, e, m).to_bytes(k, "big")


def rsa_private_crt(data: bytes, p: int, q: int, dp: int, dq: int, qinv: int) -> bytes:
    # data^d mod pq by the Chinese Remainder Theorem (Garner):
    # m1 = c^dp mod p, m2 = c^dq mod q, h = qinv (m1 - m2) mod p,
    # m = m2 + h q. Output has the modulus length.
    n = p * q
    k = _nbytes(n)
    c = int.from_bytes(bytes(data), "big")
    if len(data) != k or c >= n:
        raise ValueError("input must be %d bytes and less than the modulus" % k)
    m1 = provider.powmod(c % p, dp, p)
    m2 = provider.powmod(c % q, dq, q)
    h = (qinv * (m1 - m2)) % p
    return (m2 + h * q).to_bytes(k, "big")


_FIELDS = ("n", "e", "p", "q", "dp", "dq", "qinv")


def _be(x: int) -> bytes:
    # A positive int as big-endian bytes, as few as hold it.
    return x.to_bytes(_nbytes(x) or 1, "big")


class RSAPrivateKey:
    # An RSA key in CRT form, as a card profile stores it. to_dict() /
    # from_dict() use upper-case hex strings for every number so the key
    # can live in a JSON profile's "secrets"; from_dict() derives dp, dq
    # and qinv from p, q and d (or e) when they are missing. With a native
    # RSA backend (provider.native_rsa()), private() hands it the numbers
    # as bytes, converted once and kept in _raw: a key's numbers are not
    # changed after it is made.
    __slots__ = ("n", "e", "p", "q", "dp", "dq", "qinv", "_raw")

    def __init__(self, n: int, e: int, p: int, q: int, dp: int, dq: int, qinv: int) -> None:
        if p * q != n:
            raise ValueError("p * q != n")
        self.n = n
        self.e = e
        self.p = p
        self.q = q
        self.dp = dp
        self.dq = dq
        self.qinv = qinv
        self._raw: "tuple | None" = None

    @property
    def size(self) -> int:
        # Modulus length in bytes (N_IC / N_I in EMV terms).
        return _nbytes(self.n)

    def modulus(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    def private(self, data: bytes) -> bytes:
        # The private operation, checked with the public exponent before
        # anything leaves the card (a faulty CRT half would leak a factor).
        if provider.native_rsa():
            return self._private_native(bytes(data))
        out = rsa_private_crt(data, self.p, self.q, self.dp, self.dq, self.qinv)
        if pow(int.from_bytes(out, "big"), self.e, self.n) != int.from_bytes(bytes(data), "big"):
            raise ValueError("RSA CRT self-check failed")
        return out

    def _private_native(self, data: bytes) -> bytes:
        raw = self._raw
        if raw is None:
            raw = (self.modulus(), _be(self.e), _be(self.p), _be(self.q), _be(self.dp), _be(self.dq),
                   _be(self.qinv))
            self._raw = raw
        n = raw[0]
        if len(data) != len(n) or data >= n:  # equal lengths: bytes order is numeric order
            raise ValueError("input must be %d bytes and less than the modulus" % len(n))
        out = provider.rsa_crt(data, raw[2], raw[3], raw[4], raw[5], raw[6])
        if provider.rsa_public(out, raw[1], n) != data:
            raise ValueError("RSA CRT self-check failed")
        return out

    def to_dict(self) -> dict:
        out = {}
        for name in _FIELDS:
            out[name] = "%X" % getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RSAPrivateKey":
        def num(name: str) -> "int | None":
            v = d.get(name)
            if v is None:
                return None
            if isinstance(v, int):
                return v
            return int(v, 16)

        p = num("p")
        q = num("q")
        e = num("e")
        if p is None or q is None or e is None:
            raise ValueError("an RSA private key needs p, q and e")
        n = num("n")
        if n is None:
            n = p * q
        dp = num("dp")
        dq = num("dq")
        qinv = num("qinv")
        if dp is None or dq is None:
            d_ = num("d")
            dp = d_ % (p - 1) if d_ is not None else _modinv(e, p - 1)
            dq = d_ % (q - 1) if d_ is not None else _modinv(e, q - 1)
        if qinv is None:
            qinv = _modinv(q, p)
        return cls(n, e, p, q, dp, dq, qinv)


def sign_recoverable(key: RSAPrivateKey, recoverable: bytes, extra: bytes) -> bytes:
    # EMV Book 2 Annex A2.1.2 (ISO/IEC 9796-2 scheme 1, SHA-1): the signed
    # block is  6A || MSG1 || H || BC  with H = SHA-1(MSG1 || MSG2), where
    # MSG1 (`recoverable`) is what the verifier gets back and MSG2 (`extra`)
    # is known to it already. The block must be exactly the modulus length
    # (N - 22 bytes of MSG1); it is then signed with the private key.
    k = key.size
    block = b"\x6a" + bytes(recoverable) + provider.sha1(bytes(recoverable) + bytes(extra)) + b"\xbc"
    if len(block) != k:
        raise ValueError("recoverable data must be %d bytes for a %d-byte modulus, got %d"
                         % (k - 22, k, len(recoverable)))
    return key.private(block)


def recover(signature: bytes, e: int, n: bytes) -> bytes:
    # Annex A2.1.3 step 1: the recovered block, signature^e mod n. Checking
    # the header, trailer and hash is the terminal's job (ODA).
    return rsa_public(signature, e, n)

# SM2 digital signatures (GB/T 32918.2-2016, GM/T 0003.2-2012) on the
# recommended curve sm2p256v1 (GB/T 32918.5-2017), with other prime curves
# as data (the standard's examples use an example curve). PBOC 3.0
# (JR/T 0025) signs certificates and dynamic data with it when the SM
# suite is chosen.
#
# Points are affine (x, y) tuples of ints, or None for the point at
# infinity; the arithmetic runs in Jacobian coordinates (X, Y, Z) standing
# for (X/Z^2, Y/Z^3), with one inversion at the end of a multiplication.
#
# Where the provider has a native backend with sm2_mul (the token images:
# firmware/native/sm2.c), multiply() on sm2p256v1 runs there: a fixed
# window without branches on the scalar (docs/firmware.md says what is and
# is not constant-time). The portable code here is not constant-time:
# Python big integers and the branches on scalar bits leak timing. Fine for
# a test card and the terminal's verification (which handles public data
# only); sign_digest's arithmetic mod n stays in Python on every port.
#
# Portable: runs unchanged on CPython and MicroPython (big ints, 3-argument
# pow; no int.bit_length(), no pow(x, -1, m)).

from . import provider
from .sm3 import SM3

DEFAULT_USER_ID = b"1234567812345678"  # GB/T 35276-2017 §10 / GM/T 0009-2012 §10


class SM2Error(ValueError):
    # A key, point, encoding or parameter that SM2 cannot use.
    def __init__(self, message: str) -> None:
        super().__init__(message)


class Curve:
    # A prime-field curve y^2 = x^3 + ax + b with base point G of prime
    # order n (cofactor 1), all as ints; size is the field element length.
    __slots__ = ("name", "p", "a", "b", "n", "gx", "gy", "size", "_a_is_m3")

    def __init__(self, name: str, p: int, a: int, b: int, n: int, gx: int, gy: int) -> None:
        self.name = name
        self.p = p
        self.a = a
        self.b = b
        self.n = n
        self.gx = gx
        self.gy = gy
        self.size = (len("%x" % p) + 1) // 2
        self._a_is_m3 = a == p - 3

    @property
    def g(self) -> tuple:
        return (self.gx, self.gy)

    def contains(self, point: "tuple | None") -> bool:
        # Whether an affine point lies on the curve (None, infinity, does not).
        if point is None:
            return False
        x, y = point
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % p == 0


# GB/T 32918.5-2017 (GM/T 0003.5-2012) recommended parameters.
SM2P256V1 = Curve(
    "sm2p256v1",
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)


# --- Jacobian arithmetic (an infinity has Z = 0) ---

def _double(c: Curve, x1: int, y1: int, z1: int) -> tuple:
    # 2P. M = 3X^2 + aZ^4 (= 3(X - Z^2)(X + Z^2) when a = -3),
    # S = 4XY^2, X' = M^2 - 2S, Y' = M(S - X') - 8Y^4, Z' = 2YZ.
    p = c.p
    if z1 == 0 or y1 == 0:
        return (1, 1, 0)
    yy = y1 * y1 % p
    zz = z1 * z1 % p
    if c._a_is_m3:
        m = 3 * (x1 - zz) * (x1 + zz) % p
    else:
        m = (3 * x1 * x1 + c.a * zz * zz) % p
    s = 4 * x1 * yy % p
    x3 = (m * m - 2 * s) % p
    y3 = (m * (s - x3) - 8 * yy * yy) % p
    z3 = 2 * y1 * z1 % p
    return (x3, y3, z3)


def _add(c: Curve, x1: int, y1: int, z1: int, x2: int, y2: int, z2: int) -> tuple:
    # P + Q. U1 = X1 Z2^2, U2 = X2 Z1^2, S1 = Y1 Z2^3, S2 = Y2 Z1^3,
    # H = U2 - U1, R = S2 - S1; X3 = R^2 - H^3 - 2 U1 H^2,
    # Y3 = R (U1 H^2 - X3) - S1 H^3, Z3 = H Z1 Z2. Z2 = 1 (an affine Q)
    # skips its multiplications.
    if z1 == 0:
        return (x2, y2, z2)
    if z2 == 0:
        return (x1, y1, z1)
    p = c.p
    z1z1 = z1 * z1 % p
    u2 = x2 * z1z1 % p
    s2 = y2 * z1z1 * z1 % p
    if z2 == 1:
        u1 = x1
        s1 = y1
    else:
        z2z2 = z2 * z2 % p
        u1 = x1 * z2z2 % p
        s1 = y1 * z2z2 * z2 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if h == 0:
        if r == 0:
            return _double(c, x1, y1, z1)
        return (1, 1, 0)
    hh = h * h % p
    hhh = hh * h % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = h * z1 % p
    if z2 != 1:
        z3 = z3 * z2 % p
    return (x3, y3, z3)


def _affine(c: Curve, j: tuple) -> "tuple | None":
    x, y, z = j
    if z == 0:
        return None
    p = c.p
    zi = pow(z, p - 2, p)  # p is prime (Fermat)
    zi2 = zi * zi % p
    return (x * zi2 % p, y * zi2 * zi % p)


def _bits(k: int) -> str:
    # The scalar's bits, most significant first, as a string of 0/1.
    h = "%x" % k
    out = []
    for ch in h:
        v = int(ch, 16)
        out.append("01"[(v >> 3) & 1] + "01"[(v >> 2) & 1] + "01"[(v >> 1) & 1] + "01"[v & 1])
    return "".join(out)


def multiply(c: Curve, k: int, point: "tuple | None") -> "tuple | None":
    # [k]P for an affine point: the native backend on sm2p256v1 when the
    # provider has one, else left-to-right double and add (not constant-time).
    k %= c.n
    if k == 0 or point is None:
        return None
    if c is SM2P256V1 and provider.native_sm2():
        return _native_multiply(c, k, point)
    px, py = point
    acc = (1, 1, 0)
    for bit in _bits(k):
        acc = _double(c, acc[0], acc[1], acc[2])
        if bit == "1":
            acc = _add(c, acc[0], acc[1], acc[2], px, py, 1)
    return _affine(c, acc)


def _native_multiply(c: Curve, k: int, point: tuple) -> tuple:
    # [k]P through provider.sm2_mul (k in [1, n-1]); the base point goes as
    # None (no on-curve check needed). A point not on the curve is an SM2Error.
    px, py = point
    size = c.size
    q = None if px == c.gx and py == c.gy else px.to_bytes(size, "big") + py.to_bytes(size, "big")
    try:
        xy = provider.sm2_mul(k.to_bytes(size, "big"), q)
    except ValueError as exc:
        raise SM2Error("SM2 scalar multiplication: %s" % exc) from exc
    return (int.from_bytes(xy[:size], "big"), int.from_bytes(xy[size:], "big"))


def multiply_add(c: Curve, k1: int, p1: "tuple | None", k2: int, p2: "tuple | None") -> "tuple | None":
    # [k1]P1 + [k2]P2 in one pass (Shamir's trick: one doubling per bit).
    k1 %= c.n
    k2 %= c.n
    if p1 is None or k1 == 0:
        return multiply(c, k2, p2)
    if p2 is None or k2 == 0:
        return multiply(c, k1, p1)
    both = _affine(c, _add(c, p1[0], p1[1], 1, p2[0], p2[1], 1))
    b1 = _bits(k1)
    b2 = _bits(k2)
    width = max(len(b1), len(b2))
    b1 = "0" * (width - len(b1)) + b1
    b2 = "0" * (width - len(b2)) + b2
    acc = (1, 1, 0)
    for i in range(width):
        acc = _double(c, acc[0], acc[1], acc[2])
        pick = (2 if b1[i] == "1" else 0) + (1 if b2[i] == "1" else 0)
        if pick == 3:
            if both is None:
                continue
            q = both
        elif pick == 2:
            q = p1
        elif pick == 1:
            q = p2
        else:
            continue
        acc = _add(c, acc[0], acc[1], acc[2], q[0], q[1], 1)
    return _affine(c, acc)


# --- Keys and encodings ---

def _int(data: bytes) -> int:
    return int.from_bytes(bytes(data), "big")


def _be(c: Curve, x: int) -> bytes:
    return x.to_bytes(c.size, "big")


def public_key(d: int, curve: Curve = SM2P256V1) -> tuple:
    # P = [d]G for a private key d in [1, n-2] (§6.1 of GB/T 32918.1: d = n-1
    # is excluded because signing divides by 1 + d).
    if not 1 <= d <= curve.n - 2:
        raise SM2Error("an SM2 private key must be in [1, n-2]")
    point = multiply(curve, d, curve.g)
    if point is None:  # cannot happen for d in range; kept as a guard
        raise SM2Error("private key gives the point at infinity")
    return point


def encode_point(point: tuple, curve: Curve = SM2P256V1) -> bytes:
    # Uncompressed form 04 || x || y (GB/T 32918.1 §4.2.9).
    if point is None:
        raise SM2Error("the point at infinity has no encoding")
    return b"\x04" + _be(curve, point[0]) + _be(curve, point[1])


def decode_point(data: bytes, curve: Curve = SM2P256V1) -> tuple:
    # 04 || x || y, or the compressed 02/03 || x (GB/T 32918.1 §4.2.9-§4.2.10),
    # checked to lie on the curve (a public key from a card or a certificate
    # is untrusted input).
    data = bytes(data)
    k = curve.size
    if len(data) == 1 + k and data[0] in (2, 3):
        return _decompress(curve, _int(data[1:]), data[0] & 1)
    if len(data) != 1 + 2 * k or data[0] != 4:
        raise SM2Error("an SM2 public key is 04 || x || y (%d bytes) or 02/03 || x (%d), got %d bytes starting %02X"
                       % (1 + 2 * k, 1 + k, len(data), data[0] if data else 0))
    point = (_int(data[1:1 + k]), _int(data[1 + k:]))
    if not curve.contains(point):
        raise SM2Error("the public key is not a point of %s" % curve.name)
    return point


def _decompress(c: Curve, x: int, parity: int) -> tuple:
    # y from x and the parity of y (GB/T 32918.1 Annex B: y^2 = x^3 + ax + b;
    # a square root mod p is rhs^((p+1)/4) when p = 3 mod 4, as for sm2p256v1).
    p = c.p
    if c.p % 4 != 3:
        raise SM2Error("compressed points are decoded only on curves with p = 3 mod 4")
    if not 0 <= x < p:
        raise SM2Error("the compressed point's x is not a field element")
    rhs = (x * x * x + c.a * x + c.b) % p
    y = pow(rhs, (p + 1) // 4, p)
    if y * y % p != rhs:
        raise SM2Error("the compressed point is not on %s" % c.name)
    if y & 1 != parity:
        y = p - y
    return (x, y)


# --- Signatures (GB/T 32918.2 §6, §7) ---

def user_hash(public: tuple, user_id: bytes = DEFAULT_USER_ID, curve: Curve = SM2P256V1) -> bytes:
    # Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) (§5.5),
    # ENTL_A the ID's length in bits on two bytes.
    user_id = bytes(user_id)
    bits = 8 * len(user_id)
    if bits > 0xFFFF:
        raise SM2Error("an SM2 user ID is at most 8191 bytes")
    h = SM3(bytes([bits >> 8, bits & 255]) + user_id)
    h.update(_be(curve, curve.a) + _be(curve, curve.b) + _be(curve, curve.gx) + _be(curve, curve.gy))
    h.update(_be(curve, public[0]) + _be(curve, public[1]))
    return h.digest()


def message_digest(public: tuple, message: bytes, user_id: bytes = DEFAULT_USER_ID,
                   curve: Curve = SM2P256V1) -> bytes:
    # e = SM3(Z_A || M) (§6.1 steps A1-A2, §7.1 steps B3-B4).
    h = SM3(user_hash(public, user_id, curve))
    h.update(bytes(message))
    return h.digest()


# Draws of k before a signature gives up: a working random source is refused
# with a chance of about 2^-32 per draw, so running out means it is stuck
# (all zeros, all ones); signing then fails instead of looping for ever.
_DRAWS = 16


def _random_scalar(c: Curve, rng) -> int:  # rng(nbytes) -> bytes
    # k in [1, n-1], by rejection (k is uniform).
    for _ in range(_DRAWS):
        k = _int(rng(c.size))
        if 1 <= k < c.n:
            return k
    raise SM2Error("the random source gave no usable k in %d draws" % _DRAWS)


def _inverse_mod_n(c: Curve, x: int) -> int:
    # x^-1 mod n = x^(n-2) mod n (n is prime, Fermat). Through the native
    # Montgomery power where the provider has it (about 6 M instructions in
    # Python on a Cortex-M3): its time depends on the exponent, which is the
    # public n - 2, not on x (the private key plus one).
    if provider.native_rsa():
        return _int(provider.rsa_public(_be(c, x % c.n), _be(c, c.n - 2), _be(c, c.n)))
    return pow(x, c.n - 2, c.n)


def sign_digest(d: int, e: bytes, rng=None, curve: Curve = SM2P256V1) -> bytes:
    # r || s (2 x size bytes) over the digest e (§6.1 steps A3-A7):
    # (x1, y1) = [k]G, r = (e + x1) mod n, retried on r = 0 or r + k = n;
    # s = (1 + d)^-1 (k - r d) mod n, retried on s = 0. rng(nbytes) -> bytes
    # supplies k (the card's random source by default; tests pin it).
    n = curve.n
    if not 1 <= d <= n - 2:
        raise SM2Error("an SM2 private key must be in [1, n-2]")
    if rng is None:
        rng = provider.random_bytes
    ev = _int(e)
    inv = _inverse_mod_n(curve, 1 + d)
    for _ in range(_DRAWS):
        k = _random_scalar(curve, rng)
        point = multiply(curve, k, curve.g)
        if point is None:  # k in [1, n-1] never gives infinity; kept for the type
            continue
        r = (ev + point[0]) % n
        if r == 0 or r + k == n:
            continue
        s = inv * (k - r * d) % n
        if s == 0:
            continue
        return _be(curve, r) + _be(curve, s)
    raise SM2Error("the random source gave no usable k in %d draws" % _DRAWS)


def sign(d: int, message: bytes, user_id: bytes = DEFAULT_USER_ID, rng=None, curve: Curve = SM2P256V1,
         public: "tuple | None" = None) -> bytes:
    # The signature r || s of a message by the key d with its user ID. The
    # public key is derived from d unless given (it enters Z_A).
    if public is None:
        public = public_key(d, curve)
    return sign_digest(d, message_digest(public, message, user_id, curve), rng, curve)


def verify_digest(public: tuple, e: bytes, signature: bytes, curve: Curve = SM2P256V1) -> bool:
    # §7.1 steps B1-B2 and B5-B7: r, s in [1, n-1], t = (r + s) mod n != 0,
    # (x1, y1) = [s]G + [t]P_A, valid when (e + x1) mod n == r. A wrong
    # signature is False; a malformed one (wrong length) too.
    signature = bytes(signature)
    k = curve.size
    n = curve.n
    if len(signature) != 2 * k:
        return False
    r = _int(signature[:k])
    s = _int(signature[k:])
    if not (1 <= r < n and 1 <= s < n):
        return False
    t = (r + s) % n
    if t == 0:
        return False
    point = multiply_add(curve, s, curve.g, t, public)
    if point is None:
        return False
    return (_int(e) + point[0]) % n == r


def verify(public: tuple, message: bytes, signature: bytes, user_id: bytes = DEFAULT_USER_ID,
           curve: Curve = SM2P256V1) -> bool:
    # Whether signature (r || s) is the key's signature of message with user_id.
    return verify_digest(public, message_digest(public, message, user_id, curve), signature, curve)


# --- A signing key as a card holds it ---

class SM2PrivateKey:
    # d with its public point P = [d]G and Z_A (computed once, on first
    # use). A profile stores {"d": hex, "public": hex x || y}; the public
    # point is checked to lie on the curve, not recomputed from d (a scalar
    # multiplication the card need not pay at every boot).
    def __init__(self, d: int, public: "tuple | None" = None, user_id: bytes = DEFAULT_USER_ID,
                 curve: Curve = SM2P256V1) -> None:
        if not 1 <= d <= curve.n - 2:
            raise SM2Error("an SM2 private key must be in [1, n-2]")
        self.d = d
        self.curve = curve
        self.public = public if public is not None else public_key(d, curve)
        self.user_id = bytes(user_id)
        self._z = None  # type: bytes | None

    def public_bytes(self) -> bytes:
        # x || y (2 x 32 bytes), the form PBOC certificates carry.
        return encode_point(self.public, self.curve)[1:]

    def sign(self, message: bytes, rng=None) -> bytes:
        # r || s over SM3(Z_A || message).
        if self._z is None:
            self._z = user_hash(self.public, self.user_id, self.curve)
        h = SM3(self._z)
        h.update(bytes(message))
        return sign_digest(self.d, h.digest(), rng, self.curve)

    def to_dict(self) -> dict:
        return {"d": "%064X" % self.d, "public": "".join(["%02X" % b for b in self.public_bytes()])}

    @classmethod
    def from_dict(cls, doc: dict) -> "SM2PrivateKey":
        d = int(doc["d"], 16)
        public = decode_point(b"\x04" + bytes.fromhex(doc["public"]))
        return cls(d, public)

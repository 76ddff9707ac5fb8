"""EMV public key certificates and signed static data (EMV Book 2 §5, §6).

Each is signed with the EMV digital signature scheme giving message recovery
(Book 2 Annex A2.1), through :func:`emvkit.firmware.crypto.rsa.sign_recoverable`.
"""

from __future__ import annotations

from dataclasses import dataclass

from emvkit.firmware.crypto.rsa import RSAPrivateKey, sign_recoverable
from emvkit.firmware.crypto.sm2 import SM2PrivateKey
from emvkit.terminal.perso.keys import exponent_bytes

__all__ = ["Certificate", "icc_certificate", "issuer_certificate", "signed_static_data", "sm_icc_certificate",
           "sm_issuer_certificate"]

HASH_SHA1 = 0x01
PK_RSA = 0x01


@dataclass(frozen=True)
class Certificate:
    certificate: bytes  # tag 90 or 9F46
    remainder: bytes  # tag 92 or 9F48 (empty when the key fits)
    exponent: bytes  # tag 9F32 or 9F47


def _split_key(modulus: bytes, room: int) -> tuple[bytes, bytes]:
    """The leftmost ``room`` bytes (BB-padded when shorter) and the rest."""
    if len(modulus) <= room:
        return modulus + b"\xbb" * (room - len(modulus)), b""
    return modulus[:room], modulus[room:]


def issuer_identifier(pan: str) -> bytes:
    """Leftmost 3-8 digits of the PAN, padded with F to 4 bytes (Book 2 Table 6)."""
    digits = pan[:8]
    return bytes.fromhex(digits + "F" * (8 - len(digits)))


def issuer_certificate(
    ca: RSAPrivateKey, issuer: RSAPrivateKey, pan: str, expiry_mmyy: str, serial: bytes
) -> Certificate:
    """Issuer Public Key Certificate, format 02 (Book 2 §5.3, Table 6)."""
    modulus = issuer.modulus()
    key_part, remainder = _split_key(modulus, ca.size - 36)
    exponent = exponent_bytes(issuer.e)
    body = (
        b"\x02"
        + issuer_identifier(pan)
        + bytes.fromhex(expiry_mmyy)
        + serial
        + bytes((HASH_SHA1, PK_RSA, len(modulus), len(exponent)))
        + key_part
    )
    return Certificate(sign_recoverable(ca, body, remainder + exponent), remainder, exponent)


def icc_certificate(
    issuer: RSAPrivateKey,
    icc: RSAPrivateKey,
    pan: str,
    expiry_mmyy: str,
    serial: bytes,
    static_data: bytes,
) -> Certificate:
    """ICC Public Key Certificate, format 04 (Book 2 §6.4, Table 14); the
    hash also covers the static data to be authenticated."""
    modulus = icc.modulus()
    key_part, remainder = _split_key(modulus, issuer.size - 42)
    exponent = exponent_bytes(icc.e)
    pan_field = bytes.fromhex((pan + "F" * (20 - len(pan)))[:20])
    body = (
        b"\x04"
        + pan_field
        + bytes.fromhex(expiry_mmyy)
        + serial
        + bytes((HASH_SHA1, PK_RSA, len(modulus), len(exponent)))
        + key_part
    )
    return Certificate(sign_recoverable(issuer, body, remainder + exponent + static_data), remainder, exponent)


def signed_static_data(issuer: RSAPrivateKey, dac: bytes, static_data: bytes) -> bytes:
    """Signed Static Application Data, format 03 (Book 2 §5.4, Table 7)."""
    body = b"\x03" + bytes((HASH_SHA1,)) + dac
    body += b"\xbb" * (issuer.size - 22 - len(body))
    return sign_recoverable(issuer, body, static_data)


# --- PBOC 3.0 SM suite (JR/T 0025): certificates signed with SM2 over SM3 ---
#
# Not recovered from the signature: the certificate is its data followed by
# the 64-byte SM2 signature r || s of that data (for the ICC certificate,
# of that data followed by the static data to be authenticated), made with
# the signer's Z_A under the default user ID (GB/T 32918.2, GM/T 0009).
#
#   Issuer: 12 | issuer identifier (4) | expiry MMYY (2) | serial (3) |
#           04 (signature algorithm: SM2 with SM3) | 04 (public key
#           algorithm: SM2) | 00 (public key parameter) | 40 | x || y (64)
#   ICC:    14 | PAN, F padded (10) | expiry (2) | serial (3) | 04 | 04 |
#           00 | 40 | x || y (64)
#
# docs/card-application.md "SM suite" lists what of this layout was checked
# against a public source and what was not.

SM_ISSUER_FORMAT = 0x12
SM_ICC_FORMAT = 0x14
SM_SIGNATURE_SM2_SM3 = 0x04
PK_SM2 = 0x04
SM_KEY_PARAMETER = 0x00


def sm_issuer_certificate(ca: SM2PrivateKey, issuer: SM2PrivateKey, pan: str, expiry_mmyy: str,
                          serial: bytes) -> bytes:
    """Issuer Public Key Certificate (90) of the SM suite, format 12."""
    key = issuer.public_bytes()
    body = (bytes((SM_ISSUER_FORMAT,)) + issuer_identifier(pan) + bytes.fromhex(expiry_mmyy) + serial
            + bytes((SM_SIGNATURE_SM2_SM3, PK_SM2, SM_KEY_PARAMETER, len(key))) + key)
    return body + ca.sign(body)


def sm_icc_certificate(issuer: SM2PrivateKey, icc: SM2PrivateKey, pan: str, expiry_mmyy: str, serial: bytes,
                       static_data: bytes) -> bytes:
    """ICC Public Key Certificate (9F46) of the SM suite, format 14; the
    signature also covers the static data to be authenticated."""
    key = icc.public_bytes()
    pan_field = bytes.fromhex((pan + "F" * (20 - len(pan)))[:20])
    body = (bytes((SM_ICC_FORMAT,)) + pan_field + bytes.fromhex(expiry_mmyy) + serial
            + bytes((SM_SIGNATURE_SM2_SM3, PK_SM2, SM_KEY_PARAMETER, len(key))) + key)
    return body + issuer.sign(body + static_data)

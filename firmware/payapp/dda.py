# Signed Dynamic Application Data (EMV Book 2 §6.5 DDA, §6.6 CDA; EMV
# Contactless Book C-3 fDDA). The card signs, with its ICC private key:
#
#   6A | 05 | 01 | LDD | ICC Dynamic Data | BB..BB | SHA-1(...) | BC
#
# where the hash covers 05 .. BB..BB followed by the data that is not
# recovered from the signature (the "extra" argument): the DDOL data for
# DDA, the fDDA data for fDDA, the Unpredictable Number for CDA.

from ..crypto import provider
from ..crypto.rsa import sign_recoverable

_FORMAT_SDAD = 0x05
_HASH_SHA1 = 0x01


def sign_dynamic_data(key, dynamic: bytes, extra: bytes) -> bytes:
    # Book 2 Table 17: the recovered part is padded with BB to N_IC - 22.
    room = key.size - 25
    if len(dynamic) > room:
        raise ValueError("ICC dynamic data of %d bytes does not fit a %d-byte key" % (len(dynamic), key.size))
    body = bytes((_FORMAT_SDAD, _HASH_SHA1, len(dynamic))) + dynamic + b"\xbb" * (room - len(dynamic))
    return sign_recoverable(key, body, extra)


# PBOC 3.0 (JR/T 0025) SM suite: the signed dynamic data is not recovered
# from an SM2 signature but sent beside it:
#
#   15 | LDD | ICC Dynamic Data | r || s (64 bytes)
#
# the signature over 15 | LDD | ICC Dynamic Data followed by the same
# "extra" data as above, hashed with SM3 under the signer's Z_A (GB/T
# 32918.2 with the default user ID). Layout as public implementations read
# it; docs/card-application.md "SM suite" says what is verified.
_FORMAT_SDAD_SM = 0x15


def sign_dynamic_data_sm(key, dynamic: bytes, extra: bytes, rng) -> bytes:
    # rng(nbytes) -> bytes: the card's random source, for the signature's k
    # (a board without os.urandom has its own; a pinned source pins k).
    if len(dynamic) > 255:
        raise ValueError("ICC dynamic data of %d bytes" % len(dynamic))
    head = bytes((_FORMAT_SDAD_SM, len(dynamic))) + dynamic
    return head + key.sign(head + extra, rng)


def dda_dynamic_data(dynamic_number: bytes) -> bytes:
    # Book 2 §6.5.1: ICC Dynamic Number length and value.
    return bytes((len(dynamic_number),)) + dynamic_number


def cda_dynamic_data(dynamic_number: bytes, cid: int, ac: bytes, tx_hash: bytes) -> bytes:
    # Book 2 Table 19: LDN | ICC Dynamic Number | CID | AC | Transaction
    # Data Hash Code.
    return bytes((len(dynamic_number),)) + dynamic_number + bytes((cid,)) + ac + tx_hash


def fdda_extra(version: int, un: bytes, amount: bytes, currency: bytes, card_auth_data: bytes) -> bytes:
    # Book C-3 (fDDA): version 00 signs the terminal UN only; version 01
    # also the amount authorised, the transaction currency code and the
    # Card Authentication Related Data (9F69).
    if version == 0:
        return un
    return un + amount + currency + card_auth_data


def transaction_data_hash(pdol_data: bytes, cdol1_data: bytes, cdol2_data: bytes, response_tlvs: bytes) -> bytes:
    # Book 2 §6.6.1: SHA-1 over the PDOL data, the CDOL1 (and, for the
    # second GENERATE AC, CDOL2) data and the data objects of the GENERATE
    # AC response other than the SDAD, in the order they are returned.
    return provider.sha1(pdol_data + cdol1_data + cdol2_data + response_tlvs)

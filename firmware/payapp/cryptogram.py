# Application cryptograms: Card Verification Results, Issuer Application
# Data, the AC itself per cryptogram version, card risk management and
# issuer authentication (EMV Book 2 §8, Book 3 §6.5.5 and Annex C; the
# scheme layouts are documented in docs/card-application.md).

from ..crypto import emv as emvcrypto

CID_AAC = 0x00
CID_TC = 0x40
CID_ARQC = 0x80

# Terminal data every cryptogram version signs, in this order.
AC_TERMINAL_TAGS = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)

# CVR byte 1 (both layouts): bits 6-5 the AC type of the first GENERATE AC
# (or of GPO for qVSDC/qPBOC), bits 8-7 that of the second.
_CVR_FIRST = {CID_AAC: 0x00, CID_TC: 0x10, CID_ARQC: 0x20}
_CVR_SECOND = {CID_AAC: 0x00, CID_TC: 0x40, None: 0x80}


class Cvr:
    # Card Verification Results. Visa and UnionPay: 3 bytes (carried as
    # 03 || CVR in the IAD); Mastercard: 6 bytes.
    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.bits = bytearray(6 if scheme == "mastercard" else 3)

    def set(self, byte: int, mask: int) -> None:
        self.bits[byte] |= mask

    def set_ac_types(self, first: int, second: "int | None" = None, second_requested: bool = False) -> None:
        b = self.bits[0] & 0x0F
        b |= _CVR_FIRST[first]
        b |= _CVR_SECOND[second] if second_requested else 0x80
        self.bits[0] = b


# Named CVR bits: (byte index, mask) per layout.
VISA_CVR = {
    "unable_to_go_online": (0, 0x01),
    "issuer_auth_failed": (0, 0x08),
    "issuer_auth_failed_last_online": (1, 0x08),
    "exceeded_velocity": (1, 0x20),
    "new_card": (1, 0x10),
    "script_failed_last_online": (2, 0x08),
    "dda_performed": (2, 0x02),
    "cdcvm_performed": (2, 0x01),
}
MC_CVR = {
    "cda_first_genac": (1, 0x40),
    "cda_second_genac": (1, 0x20),
    "issuer_auth_performed": (1, 0x10),
    "unable_to_go_online": (3, 0x40),
    "lower_consecutive_offline_exceeded": (4, 0x80),
    "upper_consecutive_offline_exceeded": (4, 0x40),
    "lower_cumulative_offline_exceeded": (4, 0x20),
    "upper_cumulative_offline_exceeded": (4, 0x10),
    "issuer_auth_failed": (4, 0x04),
    "script_received": (4, 0x02),
    "script_failed": (4, 0x01),
    "cdcvm_performed": (5, 0x04),
}


def cvr_bit(cvr: Cvr, name: str) -> None:
    table = MC_CVR if cvr.scheme == "mastercard" else VISA_CVR
    byte, mask = table[name]
    cvr.set(byte, mask)


def script_cvr(cvr: Cvr, state) -> None:
    # The issuer script bits of the CVR from the card's script record:
    # Visa/UnionPay byte 4 b8-b5 the number of script commands processed in
    # the last online transaction, b4 script processing failed then;
    # Mastercard byte 3 b8-b5 the script counter (mod 16), byte 5 b1
    # script failed.
    cvr.set(2, (state.script_commands & 0x0F) << 4)  # the same byte in both layouts
    if state.script_failed:
        cvr_bit(cvr, "script_failed" if cvr.scheme == "mastercard" else "script_failed_last_online")


def issuer_approves(app, response: bytes) -> tuple:
    # What the Issuer Authentication Data (91) after its ARPC says:
    # (approved, reset the offline counters). Method 1 carries the ARC:
    # "00" approves and resets. Method 2 (Visa CVN 18) carries the CSU:
    # byte 2 b8 "issuer approves", b2-b1 10 "reset the velocity-checking
    # counters" (VIS, the host's coding in terminal/host/issuer.py).
    if app.cryptogram_version == "visa_cvn18":
        if len(response) < 4:
            return False, False
        approved = bool(response[1] & 0x80)
        return approved, approved and response[1] & 0x03 == 0x02
    approved = response in (b"00", b"\x00\x00")
    return approved, approved


def issuer_application_data(app, cvr: Cvr, counters: bytes = b"") -> bytes:
    # Visa (format 0/1): 06 | DKI | CVN | 03 | CVR(3)
    # UnionPay:          07 | DKI | CVN | 03 | CVR(3) | algorithm: 01 3DES, 04 SM4
    # Mastercard:        DKI | CVN | CVR(6) | DAC 0000 | counters (8)
    if app.scheme == "mastercard":
        return bytes((app.dki, app.cvn)) + bytes(cvr.bits) + b"\x00\x00" + (counters or bytes(8))
    if app.scheme == "unionpay":
        return bytes((0x07, app.dki, app.cvn, 0x03)) + bytes(cvr.bits) + (b"\x04" if app.sm else b"\x01")
    return bytes((0x06, app.dki, app.cvn, 0x03)) + bytes(cvr.bits)


def cryptogram_data(app, terminal: dict, aip: bytes, atc: bytes, iad: bytes) -> bytes:
    # The data the AC covers (see firmware/crypto/emv.py for the versions).
    data = b"".join([terminal.get(t, b"") for t in AC_TERMINAL_TAGS]) + aip + atc
    version = app.cryptogram_version
    if version == "visa_cvn10":
        return data + iad[3:7]
    if version in ("mc_cvn16",):
        return data + iad[2:8]
    if version == "mc_cvn17":
        return data + iad[2:8] + iad[10:18]
    return data + iad  # visa_cvn18, upi, upi_sm4


def generate_ac(app, icc_mk_ac: bytes, atc: bytes, data: bytes, un: bytes) -> bytes:
    gen_ac = emvcrypto.CRYPTOGRAM_VERSIONS[app.cryptogram_version][0]
    return gen_ac(icc_mk_ac, atc, data, un)


def expected_arpc(app, icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes, un: bytes) -> bytes:
    gen_arpc = emvcrypto.CRYPTOGRAM_VERSIONS[app.cryptogram_version][1]
    return gen_arpc(icc_mk_ac, atc, arqc, response, un)


def card_risk_decision(app, state, requested: int, amount: int, offline_only: bool, cvr: Cvr) -> int:
    # Card action analysis (Book 3 §10.8 / the scheme's card risk
    # management): never more than the terminal asked for (AAC < ARQC <
    # TC); a TC request goes online when an offline limit is reached, and
    # is declined when the terminal cannot go online and an upper limit
    # (consecutive count or cumulative amount) is reached.
    if requested == CID_AAC:
        return CID_AAC
    if requested == CID_ARQC:
        return CID_ARQC
    go_online = False
    decline = False
    if app.lcol and state.consecutive_offline >= app.lcol:
        go_online = True
        if cvr.scheme == "mastercard":
            cvr_bit(cvr, "lower_consecutive_offline_exceeded")
        else:
            cvr_bit(cvr, "exceeded_velocity")
    if app.ucol and state.consecutive_offline >= app.ucol:
        decline = True
        if cvr.scheme == "mastercard":
            cvr_bit(cvr, "upper_consecutive_offline_exceeded")
    if app.offline_limit and amount > app.offline_limit:
        go_online = True
    if app.cumulative_limit and state.offline_amount + amount > app.cumulative_limit:
        go_online = True
        if cvr.scheme == "mastercard":
            cvr_bit(cvr, "lower_cumulative_offline_exceeded")
    if app.upper_cumulative_limit and state.offline_amount + amount > app.upper_cumulative_limit:
        decline = True
        if cvr.scheme == "mastercard":
            cvr_bit(cvr, "upper_cumulative_offline_exceeded")
    if offline_only:
        if go_online:
            cvr_bit(cvr, "unable_to_go_online")
        return CID_AAC if (go_online or decline) else CID_TC
    return CID_ARQC if (go_online or decline) else CID_TC


def amount_value(amount_bcd: bytes) -> int:
    # Amount, Authorised (n 12, BCD) in minor units; 0 when absent or bad.
    digits = amount_bcd.hex()
    return int(digits) if digits and digits.isdigit() else 0

"""A corpus of realistic contactless card responses for the TLV benchmark.

Each message mirrors the layout of a real card's answer (tags, order,
nesting and lengths as Visa, Mastercard and UnionPay cards return them);
certificates, signatures and cryptograms are filled with seeded random bytes
of the real sizes (1024-bit issuer key, 1024-bit ICC key), so the corpus is
the same on every run.
"""

from __future__ import annotations

import random

from emvkit.firmware.tlv import encode_tlv as t

__all__ = ["corpus"]


def corpus() -> list[tuple[str, bytes]]:
    rnd = random.Random(8583)

    def rb(n: int) -> bytes:
        return bytes(rnd.getrandbits(8) for _ in range(n))

    ppse = t(0x6F, t(0x84, b"2PAY.SYS.DDF01") + t(0xA5, t(0xBF0C,
        t(0x61, t(0x4F, bytes.fromhex("A0000000031010")) + t(0x50, b"VISA DEBIT") + t(0x87, b"\x01")
              + t(0x9F2A, b"\x03"))
        + t(0x61, t(0x4F, bytes.fromhex("A0000000041010")) + t(0x50, b"MASTERCARD") + t(0x87, b"\x02")
              + t(0x9F2A, b"\x02")))))
    visa_fci = t(0x6F, t(0x84, bytes.fromhex("A0000000031010")) + t(0xA5,
        t(0x50, b"VISA DEBIT") + t(0x87, b"\x01")
        + t(0x9F38, bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704"))
        + t(0x5F2D, b"enfr") + t(0xBF0C, t(0x9F5A, bytes.fromhex("3108260826")))))
    visa_gpo = t(0x77, t(0x82, b"\x20\x40") + t(0x94, bytes.fromhex("1802020010010100"))
        + t(0x57, bytes.fromhex("4761739001010119D29122011234567899991F")) + t(0x5F20, b"CARDHOLDER/VISA")
        + t(0x9F10, bytes.fromhex("06011203A0000000000000000000000000000000000000000000000000000000"))
        + t(0x9F26, rb(8)) + t(0x9F27, b"\x80") + t(0x9F36, b"\x00\x2a") + t(0x9F4B, rb(128))
        + t(0x9F6C, b"\x00\x80") + t(0x9F6E, bytes.fromhex("20700000")) + t(0x5F34, b"\x01"))
    visa_rec1 = t(0x70, t(0x8F, b"\x92") + t(0x90, rb(128)) + t(0x9F32, b"\x03") + t(0x92, rb(36)))
    visa_rec2 = t(0x70, t(0x9F46, rb(128)) + t(0x9F47, b"\x03") + t(0x9F48, rb(42)) + t(0x9F69, rb(7)))
    visa_rec3 = t(0x70, t(0x5A, bytes.fromhex("4761739001010119")) + t(0x5F24, bytes.fromhex("291231"))
        + t(0x5F25, bytes.fromhex("240101")) + t(0x5F28, b"\x08\x26") + t(0x9F07, b"\xff\x00")
        + t(0x9F0D, rb(5)) + t(0x9F0E, rb(5)) + t(0x9F0F, rb(5)) + t(0x9F4A, b"\x82") + t(0x5F34, b"\x01"))
    mc_fci = t(0x6F, t(0x84, bytes.fromhex("A0000000041010")) + t(0xA5, t(0x50, b"MASTERCARD")
        + t(0x87, b"\x01") + t(0x5F2D, b"en") + t(0xBF0C, t(0x9F4D, b"\x0b\x0a") + t(0x9F6E, rb(4)))))
    mc_gpo = t(0x77, t(0x82, b"\x19\x81") + t(0x94, bytes.fromhex("0802020010010101180102002001010020010200")))
    mc_rec = t(0x70, t(0x9F42, b"\x09\x78") + t(0x5F25, bytes.fromhex("240101")) + t(0x5F24, bytes.fromhex("281231"))
        + t(0x5A, bytes.fromhex("5413330089010011")) + t(0x5F34, b"\x00") + t(0x9F07, b"\xff\x00")
        + t(0x8E, bytes.fromhex("000000000000000042031E031F03")) + t(0x9F0D, rb(5)) + t(0x9F0E, rb(5))
        + t(0x9F0F, rb(5)) + t(0x5F28, b"\x08\x40")
        + t(0x8C, bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F45029F4C089F3403"))
        + t(0x8D, bytes.fromhex("910A8A0295059F37049F4C08")))
    mc_genac = t(0x77, t(0x9F27, b"\x40") + t(0x9F36, b"\x00\x17") + t(0x9F4B, rb(176))
        + t(0x9F10, bytes.fromhex("0110A00003220000000000000000000000FF")))
    upi_gpo = t(0x77, t(0x82, b"\x7c\x00") + t(0x94, bytes.fromhex("0802030010010100"))
        + t(0x9F36, b"\x01\x05") + t(0x9F26, rb(8)) + t(0x9F10, bytes.fromhex("07010103A0A00001"))
        + t(0x57, bytes.fromhex("6212345678901234D29122010000000000000F")) + t(0x9F4B, rb(128))
        + t(0x5F34, b"\x01") + t(0x9F27, b"\x40"))
    return [
        ("PPSE FCI", ppse), ("Visa AID FCI", visa_fci), ("Visa qVSDC GPO", visa_gpo),
        ("Visa record 1 (issuer cert)", visa_rec1), ("Visa record 2 (ICC cert)", visa_rec2),
        ("Visa record 3 (static data)", visa_rec3), ("Mastercard FCI", mc_fci), ("Mastercard GPO", mc_gpo),
        ("Mastercard record", mc_rec), ("Mastercard GENERATE AC (CDA)", mc_genac), ("UnionPay qPBOC GPO", upi_gpo),
    ]

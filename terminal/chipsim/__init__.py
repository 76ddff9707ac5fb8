"""Strict simulators of the front-end chips the token's firmware drives.

Each simulator answers its host link exactly as the chip's documentation says,
and refuses what the chip refuses (bad checksums, wrong lengths, commands in
the wrong state), so that a driver that passes against it has done what the
chip asks. :mod:`.pn532`: NXP PN532 as an ISO/IEC 14443-4 target (HSU).
:mod:`.nci`: an NCI controller, NXP PN7150 (NCI 1.0) or PN7160 (NCI 2.0), in
listen mode (I2C). Their RF side is on nfcpy's ``udp`` driver (:mod:`.rf` for
the NCI controller).
"""

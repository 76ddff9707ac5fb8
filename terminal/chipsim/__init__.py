"""Strict simulators of the front-end chips the token's firmware drives.

Each simulator answers its host link exactly as the chip's manual says, and
refuses what the chip refuses (bad checksums, wrong lengths, commands in the
wrong state), so that a driver that passes against it has done what the chip
asks. :mod:`.pn532`: NXP PN532 as an ISO/IEC 14443-4 target, its RF side on
nfcpy's ``udp`` driver.
"""

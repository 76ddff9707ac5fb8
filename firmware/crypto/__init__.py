# Portable EMV card-side cryptography (DES/TDEA, SHA-1, EMV key derivation,
# MACs and cryptograms, RSA with message recovery). Runs unchanged on
# CPython and MicroPython; the card code reaches primitives only through
# firmware.crypto.provider.

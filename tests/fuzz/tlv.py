"""atheris harness: BER-TLV decoding (emvkit.firmware.tlv.decode): only TLVError, and what decodes re-
encodes to the same.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.tlv`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("tlv")

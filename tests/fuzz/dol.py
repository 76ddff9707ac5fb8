"""atheris harness: DOL parsing and building (emvkit.firmware.tlv): only TLVError; built data as long
as the DOL asks, cut and built again the same.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.dol`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("dol")

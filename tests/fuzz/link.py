"""atheris harness: the serial link's frame decoder (emvkit.firmware.link): frames and faults only, the
same fed whole or in pieces.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.link`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("link")

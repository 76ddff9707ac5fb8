"""atheris harness: command and response APDU parsing (emvkit.terminal.apdu): only APDUError; what
parses encodes back.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.apdu`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("apdu")

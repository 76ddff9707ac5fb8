"""atheris harness: the issuer host's ISO 8583 answer(): an answer or none, never an exception.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.iso8583`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("iso8583")

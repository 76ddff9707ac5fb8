"""atheris harness: the card application's command handler (emvkit.firmware.payapp): every command
answered with a status word.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.card`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("card")

"""atheris harness: the kernel on arbitrary card responses: every transaction ends in an Outcome.

The property is in tests/fuzz/targets.py; run it with `make fuzz` (or `python -m tests.fuzz.kernel`).
"""

from tests.fuzz.run import main

if __name__ == "__main__":
    main("kernel")

"""Run one fuzz target under atheris (libFuzzer): ``python -m tests.fuzz.<target> [libFuzzer options] DIR...``.

`make fuzz` runs every target for FUZZ_SECONDS, new inputs going to build/fuzz/<target>/ and the
repository's corpus (tests/fuzz/corpus/<target>/) read as seeds. A crash is a finding: libFuzzer
prints the exception and writes the input that caused it (``-artifact_prefix``); replay it with
``python -m tests.fuzz.<target> FILE``.
"""

from __future__ import annotations

import logging
import sys


def main(name: str) -> None:
    import atheris

    with atheris.instrument_imports(include=["emvkit"]):
        from tests.fuzz.targets import TARGETS
    logging.disable(logging.CRITICAL)  # the host logs every malformed message it answers
    target = TARGETS[name]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

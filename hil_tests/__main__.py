"""``python -m emvkit.hil [pytest options]``: the scenario catalogue, from any directory.

The same as ``pytest --pyargs emvkit.hil``, with the scenarios imported under their package names
(``emvkit.hil.test_transactions``) rather than by inserting folders into ``sys.path``.
"""

from __future__ import annotations

import sys

import pytest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return int(pytest.main(["--pyargs", "emvkit.hil", "--import-mode=importlib",
                            "-o", "consider_namespace_packages=true", *args]))


if __name__ == "__main__":
    sys.exit(main())

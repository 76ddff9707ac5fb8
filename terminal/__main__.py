import sys

from emvkit.terminal.cli import main

sys.exit(main())

# The card application on a line protocol over stdin/stdout, for the
# MicroPython unix port (and any Python):
#
#   micropython firmware/stdio_card.py PROFILE.json [counting]
#
# Each input line is a command: a C-APDU in hex is answered with the R-APDU
# in hex; "reset" power-cycles the card ("ok"); "info" prints the profile id
# and the implementation; "quit" ends. Any other line is answered "error ...".
# The host side is terminal/transport/mpy.py.

import json
import sys

from .payapp.card import Card
from .payapp.rng import source


def main(argv):
    if len(argv) < 2:
        print("error usage: stdio_card.py PROFILE.json [os|counting]")
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    card = Card(doc, rng=source(argv[2] if len(argv) > 2 else None))
    card.power_on()
    out = sys.stdout
    print("ready")
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        line = line.strip()
        if line == "quit":
            return 0
        if line == "reset":
            card.reset()
            out.write("ok\n")
        elif line == "info":
            out.write("info %s %s\n" % (card.profile.id, sys.implementation.name))
        else:
            try:
                apdu = bytes.fromhex(line)
            except ValueError:
                out.write("error not hex\n")
            else:
                out.write(card.process(apdu).hex() + "\n")
        if hasattr(out, "flush"):
            out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

# NFC front ends of the token: the chips that put the card application on
# the air. Each driver talks to its chip over a bus (bus.py: write, and
# readinto with a timeout) and calls the card application for every C-APDU
# the reader sends. pn532.py: NXP PN532 as an ISO/IEC 14443-4 target (card
# emulation), UART (HSU) framing.

"""Card emulation on the host: virtual cards, fault injection, and vpcd/pcscd to put them behind PC/SC."""

# The emvkit firmware package: the portable core of the wearable token (CPython and MicroPython).
# The version of emvkit is kept here, once: the host side, the packaging and the
# device (DEVICE_INFO) all read it.
__version__ = "0.1.0"

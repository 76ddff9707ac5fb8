# The card application: the same code is the software emulator and the token firmware.

# emvkit's native crypto arithmetic as a MicroPython user C module (_emvnative),
# for make-based ports:  make -C ports/PORT USER_C_MODULES=/abs/path/to/firmware/native
# (emvkit.terminal.token.build passes it for the token images).
EMVNATIVE_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(EMVNATIVE_MOD_DIR)/emvnative.c
SRC_USERMOD_LIB_C += $(EMVNATIVE_MOD_DIR)/mont.c $(EMVNATIVE_MOD_DIR)/mont_armv6m.c $(EMVNATIVE_MOD_DIR)/des.c $(EMVNATIVE_MOD_DIR)/sha1.c $(EMVNATIVE_MOD_DIR)/sm2.c $(EMVNATIVE_MOD_DIR)/sm3.c

CFLAGS_USERMOD += -I$(EMVNATIVE_MOD_DIR)

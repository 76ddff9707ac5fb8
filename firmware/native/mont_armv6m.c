// The inner loop of mont.c's Montgomery products on ARMv6-M (Cortex-M0/M0+,
// the RP2040), in Thumb-1 assembly:
//
//   emvn_limb_t emvn_mac_armv6m(uint16_t *t, const uint16_t *a, uint16_t b, size_t s)
//     t[0..s) += a[0..s) * b; returns the carry out (below 2^16)
//
// 16-bit limbs (emvnative.h): MULS gives the low 32 bits of a product only,
// and a 16x16 product plus a limb of t plus a 16-bit carry is at most
// (2^16 - 1)^2 + 2 (2^16 - 1) = 2^32 - 1, so one 32-bit register holds the
// whole step: LDRH, MULS, LDRH, ADDS, ADDS, STRH, LSRS, seven instructions
// a limb product, the loop unrolled eight times (immediate offsets) after
// the s mod 8 limbs taken one at a time. What GCC makes of the same loop
// in C takes ten or eleven (index arithmetic, the loop test every limb).
//
// Constant time: the instructions and addresses depend on s only (public:
// the limb count of the modulus), never on t, a or b; ARMv6-M's MULS is a
// fixed-time instruction (1 cycle on the RP2040's Cortex-M0+, 32 cycles on a
// core built with the small multiplier, either way independent of the data).
//
// Other targets compile this file to nothing; mont.c has the C loop there.

#include "emvnative.h"

#if defined(__ARM_ARCH_6M__)

// One limb at offset K (bytes) from t (r0) and a (r1); b in r2, the carry in r4.
#define MAC_STEP(K)                                \
    "    ldrh  r5, [r1, #" #K "]\n"                \
    "    muls  r5, r2, r5\n"                       \
    "    ldrh  r6, [r0, #" #K "]\n"                \
    "    adds  r5, r5, r6\n"                       \
    "    adds  r5, r5, r4\n"                       \
    "    strh  r5, [r0, #" #K "]\n"                \
    "    lsrs  r4, r5, #16\n"

__asm__ (
    "    .syntax unified\n"
    "    .thumb\n"
    "    .text\n"
    "    .align 2\n"
    "    .global emvn_mac_armv6m\n"
    "    .type emvn_mac_armv6m, %function\n"
    "    .thumb_func\n"
    "emvn_mac_armv6m:\n"
    "    push  {r4, r5, r6, r7, lr}\n"
    "    movs  r4, #0\n"              // carry
    "    movs  r7, #7\n"
    "    ands  r7, r3\n"              // r7 = s mod 8: limbs one at a time
    "    lsrs  r3, r3, #3\n"          // r3 = blocks of eight
    "    cmp   r7, #0\n"
    "    beq   2f\n"
    "1:\n"
    MAC_STEP(0)
    "    adds  r0, r0, #2\n"
    "    adds  r1, r1, #2\n"
    "    subs  r7, r7, #1\n"
    "    bne   1b\n"
    "2:\n"
    "    cmp   r3, #0\n"
    "    beq   4f\n"
    "3:\n"
    MAC_STEP(0) MAC_STEP(2) MAC_STEP(4) MAC_STEP(6)
    MAC_STEP(8) MAC_STEP(10) MAC_STEP(12) MAC_STEP(14)
    "    adds  r0, r0, #16\n"
    "    adds  r1, r1, #16\n"
    "    subs  r3, r3, #1\n"
    "    bne   3b\n"
    "4:\n"
    "    movs  r0, r4\n"
    "    pop   {r4, r5, r6, r7, pc}\n"
    "    .size emvn_mac_armv6m, . - emvn_mac_armv6m\n"
    );

#else

// ISO C wants a translation unit to declare something.
typedef int emvn_no_armv6m_code_t;

#endif

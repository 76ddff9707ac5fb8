# emvkit's native crypto arithmetic as a MicroPython user C module (_emvnative),
# for CMake-based ports (rp2, esp32):
#   make -C ports/rp2 BOARD=RPI_PICO2 USER_C_MODULES=/abs/path/to/firmware/native/micropython.cmake
add_library(usermod_emvnative INTERFACE)

target_sources(usermod_emvnative INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/emvnative.c
    ${CMAKE_CURRENT_LIST_DIR}/mont.c
    ${CMAKE_CURRENT_LIST_DIR}/mont_armv6m.c
    ${CMAKE_CURRENT_LIST_DIR}/des.c
    ${CMAKE_CURRENT_LIST_DIR}/sha1.c
    ${CMAKE_CURRENT_LIST_DIR}/sm2.c
    ${CMAKE_CURRENT_LIST_DIR}/sm3.c
)

target_include_directories(usermod_emvnative INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_emvnative)

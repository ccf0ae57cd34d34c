# BpfObject.cmake -- compile a BPF C program and generate its libbpf skeleton.
#
# Usage (from bpf/CMakeLists.txt or any directory holding BPF sources):
#
#   bpf_object(<name> <src> [INCLUDE_DIRS <dir>...] [DEFINES <def>...])
#
#   bpf_object(xdp_probe xdp_probe.bpf.c)
#
#   target_link_libraries(my_loader PRIVATE xdp_probe_skel)
#   #include "xdp_probe.skel.h"      // generated
#   #include "xdp_probe_abi.h"       // ABI header next to the BPF source
#
# <src> is relative to the calling CMakeLists.txt directory. The function
#   - compiles it with `clang -target bpf -O2 -g` into
#     ${CMAKE_CURRENT_BINARY_DIR}/<name>.bpf.o (-g is required: libbpf needs
#     BTF for .maps and the skeleton's typed .rodata/.bss views),
#   - runs `bpftool gen skeleton` into ${CMAKE_CURRENT_BINARY_DIR}/<name>.skel.h
#     (skeleton functions are <name>__open(), <name>__load(), ...),
#   - creates the INTERFACE target <name>_skel carrying the skeleton dir, the
#     source dir (for *_abi.h headers shared with C++) and PkgConfig::LIBBPF.
#     Its BPF_OBJECT property holds the .bpf.o path for loaders/tests that
#     open the object file instead of the embedded copy.
#   - adds the build target <name>_skel_gen (part of ALL) that produces the
#     object and skeleton; `cmake --build <dir> --target <name>_skel_gen`.
# Header changes rebuild the object through a clang-generated depfile.
#
# Requires: PkgConfig::LIBBPF (pkg_check_modules(LIBBPF ... IMPORTED_TARGET)),
# clang, bpftool (Debian ships it in /usr/sbin).

include_guard(GLOBAL)

find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED
             DOC "clang able to emit -target bpf")
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin /sbin REQUIRED
             DOC "bpftool used for 'gen skeleton'")

# __TARGET_ARCH_* selects the pt_regs layout in bpf_tracing.h; harmless for
# XDP/TC programs but keeps future kprobe/uprobe programs correct.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86)$")
  set(_bpf_target_arch x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(_bpf_target_arch arm64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
  set(_bpf_target_arch arm)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(ppc64le|ppc64)$")
  set(_bpf_target_arch powerpc)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^s390x$")
  set(_bpf_target_arch s390)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^riscv64$")
  set(_bpf_target_arch riscv)
else()
  message(FATAL_ERROR "bpf_object: unknown processor '${CMAKE_SYSTEM_PROCESSOR}'")
endif()

# The uapi <linux/*.h> headers include <asm/*.h>, which Debian installs under
# the multiarch dir; -target bpf does not search it by itself.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_bpf_multiarch_dir "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}")
else()
  set(_bpf_multiarch_dir "/usr/include/${CMAKE_SYSTEM_PROCESSOR}-linux-gnu")
endif()

function(bpf_object NAME SRC)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "" "" "INCLUDE_DIRS;DEFINES")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "bpf_object(${NAME}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT NAME MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    # bpftool derives C identifiers (<name>__open, struct <name>) from it.
    message(FATAL_ERROR "bpf_object: '${NAME}' is not a C identifier")
  endif()

  get_filename_component(_src "${SRC}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  set(_obj "${CMAKE_CURRENT_BINARY_DIR}/${NAME}.bpf.o")
  set(_dep "${CMAKE_CURRENT_BINARY_DIR}/${NAME}.bpf.d")
  set(_skel "${CMAKE_CURRENT_BINARY_DIR}/${NAME}.skel.h")

  set(_flags -target bpf -O2 -g -D__TARGET_ARCH_${_bpf_target_arch} -Wall -Wextra)
  if(XGW_WERROR)
    list(APPEND _flags -Werror)
  endif()
  foreach(_d IN LISTS ARG_DEFINES)
    list(APPEND _flags "-D${_d}")
  endforeach()
  foreach(_i IN LISTS ARG_INCLUDE_DIRS CMAKE_CURRENT_SOURCE_DIR LIBBPF_INCLUDE_DIRS)
    list(APPEND _flags "-I${_i}")
  endforeach()
  # -idirafter: multiarch asm/ headers must not shadow anything in our dirs.
  list(APPEND _flags -idirafter "${_bpf_multiarch_dir}")

  add_custom_command(
    OUTPUT "${_obj}"
    COMMAND "${BPF_CLANG}" ${_flags} -MD -MF "${_dep}" -c "${_src}" -o "${_obj}"
    DEPENDS "${_src}"
    DEPFILE "${_dep}"
    COMMENT "BPF ${NAME}: clang -target bpf ${SRC}"
    VERBATIM COMMAND_EXPAND_LISTS)

  # Write to a temp file first so a failing bpftool cannot leave a truncated
  # header that later looks up to date.
  add_custom_command(
    OUTPUT "${_skel}"
    COMMAND "${BPFTOOL}" gen skeleton "${_obj}" name "${NAME}" > "${_skel}.tmp"
    COMMAND "${CMAKE_COMMAND}" -E rename "${_skel}.tmp" "${_skel}"
    DEPENDS "${_obj}"
    COMMENT "BPF ${NAME}: bpftool gen skeleton"
    VERBATIM)

  # ALL: BPF compile errors surface in a plain build even before a loader
  # links the skeleton.
  add_custom_target(${NAME}_skel_gen ALL DEPENDS "${_skel}")

  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  # The skeleton is generated code; SYSTEM keeps its style out of -Werror.
  target_include_directories(${NAME}_skel SYSTEM INTERFACE "${CMAKE_CURRENT_BINARY_DIR}")
  target_include_directories(${NAME}_skel INTERFACE "${CMAKE_CURRENT_SOURCE_DIR}")
  # Shared libbpf pulls libelf/zlib itself; static builds get them from
  # pkg-config's Libs.private only when linking statically.
  target_link_libraries(${NAME}_skel INTERFACE PkgConfig::LIBBPF)
  set_target_properties(${NAME}_skel PROPERTIES BPF_OBJECT "${_obj}" BPF_SKELETON "${_skel}")
endfunction()

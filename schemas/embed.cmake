# Generates a C file holding every schemas/*.avsc verbatim, so the binary
# carries its reader schemas (and their logicalType annotations) with it.
# Usage: cmake -DSCHEMA_DIR=... -DOUT=... -P embed.cmake
set(names usage_event secret_issued tool_call envelope verdict revocation_command state_snapshot)
set(body "/* Generated from the schemas folder by schemas/embed.cmake. Do not edit. */\n")
string(APPEND body "const char *const bg_schema_texts[] = {\n")
foreach(n IN LISTS names)
  file(READ "${SCHEMA_DIR}/${n}.avsc" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" esc "${hex}")
  # split into lines of reasonable length so compilers are happy
  string(REGEX REPLACE "((\\\\x[0-9a-f][0-9a-f]){32})" "\\1\"\n    \"" esc "${esc}")
  string(APPEND body "    /* ${n}.avsc */\n    \"${esc}\",\n")
endforeach()
string(APPEND body "};\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)

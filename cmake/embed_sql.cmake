# Generates a C file holding the SQL relance applies, as byte arrays, so
# `relance migrate` works from any directory and inside a container:
#   migrations_embedded  sql/migrations/NNN_*.sql, the numbered migrations
#   functions_embedded   sql/functions/*.sql, the repeatable function files
# each sorted by file name (sql/README.md says how they are applied).
# Invoked by the build with -DOUT=... -DSQL_DIR=...
set(body "/* Generated from sql/ by cmake/embed_sql.cmake. Do not edit. */\n#include \"migrate.h\"\n\n")
set(i 0)

# Appends to body the arrays for the files matching pattern and a table
# named table of struct migration, {0, 0, 0}-terminated, with its count.
function(embed_table table pattern)
  file(GLOB files ${pattern})
  list(SORT files)
  set(rows "")
  set(n 0)
  foreach(f ${files})
    get_filename_component(name ${f} NAME)
    file(READ ${f} hex HEX)
    string(LENGTH "${hex}" hexlen)
    math(EXPR len "${hexlen} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(APPEND body "static const unsigned char m${i}[] = {${bytes}0x00};\n")
    string(APPEND rows "    {\"${name}\", (const char *)m${i}, ${len}},\n")
    math(EXPR i "${i} + 1")
    math(EXPR n "${n} + 1")
  endforeach()
  string(APPEND body "\nconst struct migration ${table}[] = {\n${rows}    {0, 0, 0}\n};\n")
  string(APPEND body "const int ${table}_count = ${n};\n\n")
  set(body "${body}" PARENT_SCOPE)
  set(i ${i} PARENT_SCOPE)
endfunction()

embed_table(migrations_embedded "${SQL_DIR}/migrations/[0-9][0-9][0-9]_*.sql")
embed_table(functions_embedded "${SQL_DIR}/functions/*.sql")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)

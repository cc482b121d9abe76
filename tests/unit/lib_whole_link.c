/* Linked with the whole of relance_lib and only the libraries the pure
 * layer may use (tests/CMakeLists.txt): if any module of it calls libuv,
 * libpq, libcurl or the logger, this program does not link. Running it
 * proves nothing more; unit.lib_purity runs it so the link is part of a
 * test. */
#include <stdio.h>

int main(void)
{
    puts("relance_lib links on its own");
    return 0;
}

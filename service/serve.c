/* serve: placeholder, replaced below. */
#include "cli.h"
int cmd_serve(struct cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return 1; }

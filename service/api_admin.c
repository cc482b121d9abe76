/* api_admin: the HTTP API's suppressions, accounts and messages (/v1/suppressions, /v1/accounts, /v1/messages). Not written yet: no routes. */
#include "api_int.h"

const struct api_route api_admin_routes[] = {
    {NULL, NULL, 0, 0, NULL, NULL},
};

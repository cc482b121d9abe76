/* api_sequences: the HTTP API's sequences (/v1/sequences). Not written yet: no routes. */
#include "api_int.h"

const struct api_route api_sequence_routes[] = {
    {NULL, NULL, 0, 0, NULL, NULL},
};

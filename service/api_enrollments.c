/* api_enrollments: the HTTP API's enrollments (/v1/enrollments, /v1/contacts/{id}/stop). Not written yet: no routes. */
#include "api_int.h"

const struct api_route api_enrollment_routes[] = {
    {NULL, NULL, 0, 0, NULL, NULL},
};

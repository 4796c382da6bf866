/* core/error.c — lookups generated from CITRUS_ERROR_TABLE. */
#include "citrus/errors.h"

const char *citrus_strerror(int err)
{
    switch (err) {
#define CITRUS_ERR_DESC(name, val, code, http, desc)                                               \
    case (val):                                                                                    \
        return desc;
        CITRUS_ERROR_TABLE(CITRUS_ERR_DESC)
#undef CITRUS_ERR_DESC
    default:
        return "unknown error";
    }
}

const char *citrus_err_code(int err)
{
    switch (err) {
#define CITRUS_ERR_CODE(name, val, code, http, desc)                                               \
    case (val):                                                                                    \
        return code;
        CITRUS_ERROR_TABLE(CITRUS_ERR_CODE)
#undef CITRUS_ERR_CODE
    default:
        return "internal";
    }
}

int citrus_err_http_status(int err)
{
    switch (err) {
#define CITRUS_ERR_HTTP(name, val, code, http, desc)                                               \
    case (val):                                                                                    \
        return http;
        CITRUS_ERROR_TABLE(CITRUS_ERR_HTTP)
#undef CITRUS_ERR_HTTP
    default:
        return 500;
    }
}

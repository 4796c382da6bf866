/* citrus/errors.h — the one list of Citrus error codes.
 *
 * Each row: enum suffix, value, snake_case code (used in JSON errors), HTTP
 * status, and a human description. The enum, citrus_strerror(),
 * citrus_err_code() and citrus_err_http_status() are all generated from it.
 * Functions return 0 on success or a negative CITRUS_E* value. */
#ifndef CITRUS_ERRORS_H
#define CITRUS_ERRORS_H

#define CITRUS_ERROR_TABLE(X)                                                                      \
    X(OK, 0, "ok", 200, "success")                                                                 \
    X(INVAL, -1, "invalid_argument", 400, "invalid argument")                                      \
    X(BADJSON, -2, "bad_json", 400, "malformed JSON or wrong types")                               \
    X(BADKEY, -3, "invalid_key", 400, "invalid key")                                               \
    X(TOOBIGVAL, -4, "value_too_large", 400, "value too large")                                    \
    X(NOTFOUND, -5, "not_found", 404, "not found")                                                 \
    X(NOROUTE, -6, "route_not_found", 404, "no such route")                                        \
    X(NOLEASE, -7, "lease_not_found", 404, "lease not found")                                      \
    X(METHOD, -8, "method_not_allowed", 405, "method not allowed")                                 \
    X(CONFLICT, -9, "compare_failed", 409, "compare failed")                                       \
    X(COMPACTED, -10, "compacted", 410, "revision compacted")                                      \
    X(TOOBIG, -11, "body_too_large", 413, "request body too large")                                \
    X(MEDIATYPE, -12, "unsupported_media_type", 415, "unsupported media type")                     \
    X(UNPROCESSABLE, -13, "unprocessable", 422, "unprocessable request")                           \
    X(CORRUPT, -14, "corrupt", 422, "corrupt or truncated data")                                   \
    X(UNAVAILABLE, -15, "unavailable", 503, "service unavailable")                                 \
    X(TIMEOUT, -16, "outcome_unknown", 504, "timed out; outcome unknown")                          \
    X(IO, -17, "io_error", 500, "I/O error")                                                       \
    X(NOMEM, -18, "out_of_memory", 500, "out of memory")                                           \
    X(INTERNAL, -19, "internal", 500, "internal error")                                            \
    X(CLOSED, -20, "closed", 503, "closed")                                                        \
    X(EXISTS, -21, "already_exists", 409, "already exists")                                        \
    X(TOOMANY, -22, "too_many", 400, "too many items")                                             \
    X(TOOBIGHDR, -23, "headers_too_large", 431, "request headers too large")                       \
    X(STALE, -24, "stale", 503, "this node cannot confirm its copy is within the staleness bound") \
    X(NOQUORUM, -25, "no_quorum", 503, "the catalog has no quorum")                                \
    X(TRANSITION, -26, "invalid_transition", 409, "the lifecycle does not allow this change")      \
    X(INUSE, -27, "in_use", 409, "still referred to")                                              \
    X(UNREACHABLE, -28, "unreachable", 422, "the database cannot be reached")                      \
    X(FORCE, -29, "force_required", 409, "this change would move tenant data; add force=true")     \
    X(POOL, -30, "pool_exhausted", 503, "no shard connection became free in time")                 \
    X(READONLY, -31, "read_only", 503, "the shard is read-only")                                   \
    X(SQL, -32, "sql_error", 400, "the database refused the statement")                            \
    X(QUERYTIMEOUT, -33, "query_timeout", 504,                                                     \
      "the statement ran past its timeout and was cancelled")                                      \
    X(UNAUTHENTICATED, -34, "unauthenticated", 401, "no valid credentials")                        \
    X(FORBIDDEN, -35, "forbidden", 403, "the credentials do not allow this")                       \
    X(AUDIT, -36, "audit_unavailable", 503,                                                        \
      "the audit log cannot be written; the change was refused")                                   \
    X(STMTDENIED, -37, "statement_not_allowed", 403,                                               \
      "the shard sandbox does not allow this statement")                                           \
    X(TXCONTROL, -38, "statement_not_allowed", 400,                                                \
      "statements that change transaction state are not allowed here")                             \
    X(RESPTOOBIG, -39, "response_too_large", 413,                                                  \
      "the answer would pass server.max_response_bytes")                                           \
    X(NOSPACE, -40, "no_space", 507, "the catalog is past its quota; only deletes and compaction") \
    X(CROSSORIGIN, -41, "cross_origin", 403, "a cross-site request cannot change anything")        \
    X(RESERVED, -42, "reserved", 403, "keys under citrus/ are written only through their routes")  \
    X(SUPERUSER, -43, "superuser_not_allowed", 400,                                                \
      "the DSN's role is a superuser; sm-admin may allow it with allow_superuser=true")            \
    X(REGCONFLICT, -44, "conflict", 409, "this conflicts with what is already registered")         \
    X(UNKNOWNTYPE, -45, "unknown_business_type", 422, "no schema template for this business type") \
    X(SHARDDOWN, -46, "shard_unreachable", 503, "the shard did not answer in time; retry later")   \
    X(UNKNOWNTENANT, -47, "unknown_tenant", 404, "the tenant key is not registered")               \
    X(OFFSETRANGE, -48, "offset_out_of_range", 416, "the offset is past the end of the partition") \
    X(UNSUPPORTED, -49, "not_supported", 501, "the event bus backend does not support this")

/* Marks the functions libcitrus exports (everything else in the shared
 * library is hidden). */
#ifndef CITRUS_API
#define CITRUS_API __attribute__((visibility("default")))
#endif

enum citrus_err {
#define CITRUS_ERR_ENUM(name, val, code, http, desc) CITRUS_E##name = (val),
    CITRUS_ERROR_TABLE(CITRUS_ERR_ENUM)
#undef CITRUS_ERR_ENUM
};

/* Human description of err ("unknown error" for values not in the table). */
CITRUS_API const char *citrus_strerror(int err);
/* snake_case code of err, as sent in {"error":{"code":...}}. */
CITRUS_API const char *citrus_err_code(int err);
/* HTTP status that err maps to (500 for unknown values). */
CITRUS_API int citrus_err_http_status(int err);

#endif

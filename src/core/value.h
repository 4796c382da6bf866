/* core/value.h — SQL values and result sets as the data plane carries
 * them between shard drivers, the scatter-gather merge and JSON (pure: no
 * I/O).
 *
 * Types: NULL, a 64-bit integer, a double, text (UTF-8, may contain NUL
 * only if the database gave it), a boolean, bytes, and an exact decimal
 * (NUMERIC: its text form, core/decimal.h, kept as text so nothing is lost).
 * Drivers map their column types onto these (PostgreSQL int2/4/8 -> INT,
 * float4/8 -> REAL, numeric -> NUMERIC (NaN and Infinity -> TEXT), bool ->
 * BOOL, bytea -> BLOB, everything else -> TEXT; SQLite by storage class). */
#ifndef CITRUS_CORE_VALUE_H
#define CITRUS_CORE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { VAL_NULL, VAL_INT, VAL_REAL, VAL_TEXT, VAL_BOOL, VAL_BLOB, VAL_NUMERIC } val_type;

typedef struct value {
    val_type type;
    union {
        int64_t i;
        double d;
        bool b;
        struct {
            char *p; /* TEXT, BLOB, NUMERIC: NUL-terminated as well; owned */
            size_t len;
        } s;
    } u;
} value;

value val_null(void);
value val_int(int64_t i);
value val_real(double d);
value val_bool(bool b);
/* Copies len bytes (TEXT gets a terminating NUL); type VAL_NULL when out
 * of memory (check with val_ok). */
value val_text(const char *p, size_t len);
value val_blob(const void *p, size_t len);
/* An exact decimal from its text form (dec_valid); VAL_NULL when out of
 * memory or when the text is not a decimal. */
value val_numeric(const char *p, size_t len);
bool val_ok(const value *v, val_type wanted);

void val_free(value *v);
/* A deep copy; 0 or CITRUS_ENOMEM. */
int val_copy(value *dst, const value *src);

/* SQL-ish ordering for ORDER BY merges: NULL sorts first (as the smallest),
 * numbers (INT, REAL, NUMERIC, BOOL as 0/1) compare by value across types,
 * exactly (an INT beyond 2^53 against a REAL too; a NUMERIC against a REAL
 * through the nearest double), NaN above every number; TEXT and
 * BLOB compare bytewise (memcmp, then length); different kinds order
 * NULL < numbers < TEXT < BLOB. Returns <0, 0, >0. */
int val_compare(const value *a, const value *b);

/* A result: column names and rows of ncols values each (row-major). */
typedef struct result_set {
    char **columns;
    size_t ncols;
    value *cells; /* nrows * ncols */
    size_t nrows, cap_rows;
} result_set;

void rs_init(result_set *rs);
void rs_free(result_set *rs);
/* Sets the column names (copied), before any row. 0, CITRUS_EINVAL (rows
 * exist), CITRUS_ENOMEM. */
int rs_set_columns(result_set *rs, const char *const *names, size_t n);
/* Appends a row of ncols values, taking ownership of them (they are left
 * VAL_NULL in row). 0 or CITRUS_ENOMEM (row untouched). */
int rs_append_row(result_set *rs, value *row);
/* Cell (r, c). */
static inline value *rs_cell(const result_set *rs, size_t r, size_t c)
{
    return &rs->cells[r * rs->ncols + c];
}
/* Index of a column by name, or -1. */
long rs_column(const result_set *rs, const char *name);

#endif

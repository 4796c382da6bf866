/* Unit tests for wire/rowjson.c's answers: column_types, exact decimals as
 * strings, and the int64 rule ("number": a column with a value past
 * 2^53 - 1 goes as strings; "string": every integer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "wire/rowjson.h"

static value num(const char *s)
{
    return val_numeric(s, strlen(s));
}

static value txt(const char *s)
{
    return val_text(s, strlen(s));
}

/* One result of the given columns; rows given column by column per row. */
static void make(result_set *rs, const char *cols, size_t nrows, value *cells)
{
    rs_init(rs);
    const char *names[16];
    char buf[128];
    strcpy(buf, cols);
    size_t n = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    assert_int_equal(rs_set_columns(rs, names, n), 0);
    for (size_t r = 0; r < nrows; r++)
        assert_int_equal(rs_append_row(rs, &cells[r * n]), 0);
}

/* The compact JSON of the answer in this mode (the caller frees). */
static char *answer(const result_set *rs, rowjson_int64 mode)
{
    json_t *j = rowjson_result(rs, mode);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

static void assert_answer(const result_set *rs, rowjson_int64 mode, const char *want)
{
    char *s = answer(rs, mode);
    if (strcmp(s, want) != 0)
        fail_msg("got  %s\nwant %s", s, want);
    free(s);
}

static void kinds_and_types(void **state)
{
    result_set rs;
    value cells[] = {val_int(1), val_real(0.5), txt("a"), val_bool(true),  val_null(), num("1.50"),
                     val_int(2), val_real(1),   txt("b"), val_bool(false), val_null(), num("2")};
    make(&rs, "i,r,t,b,z,d", 2, cells);
    assert_answer(&rs, ROWJSON_INT64_NUMBER,
                  "{\"columns\":[\"i\",\"r\",\"t\",\"b\",\"z\",\"d\"],"
                  "\"column_types\":[\"integer\",\"real\",\"text\",\"boolean\",\"null\","
                  "\"numeric\"],"
                  "\"rows\":[[1,0.5,\"a\",true,null,\"1.50\"],[2,1.0,\"b\",false,null,\"2\"]]}");
    assert_answer(&rs, ROWJSON_INT64_STRING,
                  "{\"columns\":[\"i\",\"r\",\"t\",\"b\",\"z\",\"d\"],"
                  "\"column_types\":[\"int64-string\",\"real\",\"text\",\"boolean\",\"null\","
                  "\"numeric\"],"
                  "\"rows\":[[\"1\",0.5,\"a\",true,null,\"1.50\"],"
                  "[\"2\",1.0,\"b\",false,null,\"2\"]]}");
    rs_free(&rs);
}

static void int64_past_2_53(void **state)
{
    result_set rs;
    value cells[] = {val_int(9007199254740991),
                     val_int(7),
                     num("9007199254740993"),
                     val_int(-9007199254740992),
                     val_null(),
                     num("42"),
                     val_int(1),
                     val_int(INT64_MIN),
                     num("99999999999999999999")};
    make(&rs, "edge,col,pg", 3, cells);
    /* edge: within the safe range, numbers; col: one value past it, all
     * strings; pg: an integral numeric past 64 bits is a numeric string */
    assert_answer(&rs, ROWJSON_INT64_NUMBER,
                  "{\"columns\":[\"edge\",\"col\",\"pg\"],"
                  "\"column_types\":[\"int64-string\",\"int64-string\",\"numeric\"],"
                  "\"rows\":[[\"9007199254740991\",\"7\",\"9007199254740993\"],"
                  "[\"-9007199254740992\",null,\"42\"],"
                  "[\"1\",\"-9223372036854775808\",\"99999999999999999999\"]]}");
    rs_free(&rs);
    value safe[] = {val_int(9007199254740991), num("-9007199254740991"), val_int(0), num("12")};
    make(&rs, "a,b", 2, safe);
    assert_answer(&rs, ROWJSON_INT64_NUMBER,
                  "{\"columns\":[\"a\",\"b\"],\"column_types\":[\"integer\",\"integer\"],"
                  "\"rows\":[[9007199254740991,-9007199254740991],[0,12]]}");
    rs_free(&rs);
}

static void mixed_columns(void **state)
{
    /* SQLite: one column, several kinds (m), integers one value at a time;
     * integers and decimals (n) are a numeric column: all decimal strings */
    result_set rs;
    value cells[] = {
        val_int(9007199254740993), val_int(1), txt("x"), val_int(2), val_int(1), num("0.1")};
    make(&rs, "m,n", 3, cells);
    assert_answer(&rs, ROWJSON_INT64_NUMBER,
                  "{\"columns\":[\"m\",\"n\"],\"column_types\":[\"mixed\",\"numeric\"],"
                  "\"rows\":[[\"9007199254740993\",\"1\"],[\"x\",\"2\"],[1,\"0.1\"]]}");
    rs_free(&rs);
    /* integers among decimals: all decimal strings */
    value dec[] = {val_int(3), num("0.25")};
    make(&rs, "d", 2, dec);
    assert_answer(&rs, ROWJSON_INT64_NUMBER,
                  "{\"columns\":[\"d\"],\"column_types\":[\"numeric\"],"
                  "\"rows\":[[\"3\"],[\"0.25\"]]}");
    rs_free(&rs);
}

static void option_names(void **state)
{
    rowjson_int64 m = ROWJSON_INT64_STRING;
    assert_int_equal(rowjson_int64_parse("number", &m), 0);
    assert_int_equal(m, ROWJSON_INT64_NUMBER);
    assert_int_equal(rowjson_int64_parse("string", &m), 0);
    assert_int_equal(m, ROWJSON_INT64_STRING);
    const char *bad[] = {NULL, "", "Number", "STRING", "int", "number "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rowjson_int64_parse(bad[i], &m), CITRUS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kinds_and_types),
        cmocka_unit_test(int64_past_2_53),
        cmocka_unit_test(mixed_columns),
        cmocka_unit_test(option_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

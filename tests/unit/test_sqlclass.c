/* tests/unit/test_sqlclass.c — core/sqlclass.c: which statements change
 * transaction or session state, past comments and literals, in every
 * statement of a text, under both databases' readings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/sqlclass.h"

static void refused_as(const char *sql, const char *kind)
{
    const char *got = sqlclass_txcontrol(sql);
    if (!got || strcmp(got, kind) != 0)
        fail_msg("%s: got %s, want %s", sql, got ? got : "(allowed)", kind);
}

static void allowed(const char *sql)
{
    const char *got = sqlclass_txcontrol(sql);
    if (got)
        fail_msg("%s: refused as %s", sql, got);
}

static void test_transaction_verbs(void **state)
{
    (void)state;
    refused_as("BEGIN", "BEGIN");
    refused_as("begin immediate;", "BEGIN");
    refused_as("Begin Transaction", "BEGIN");
    refused_as("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "START TRANSACTION");
    refused_as("COMMIT", "COMMIT");
    refused_as("commit work", "COMMIT");
    refused_as("END TRANSACTION", "END");
    refused_as("ABORT", "ABORT");
    refused_as("ROLLBACK", "ROLLBACK");
    refused_as("ROLLBACK TO SAVEPOINT a", "ROLLBACK TO");
    refused_as("rollback transaction to a", "ROLLBACK TO");
    refused_as("SAVEPOINT a", "SAVEPOINT");
    refused_as("RELEASE SAVEPOINT a", "RELEASE");
    refused_as("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION");
    refused_as("COMMIT PREPARED 'x'", "COMMIT PREPARED");
    refused_as("ROLLBACK /* c */ PREPARED 'x'", "ROLLBACK PREPARED");
    /* prepared queries are not transaction control */
    allowed("PREPARE q AS SELECT 1");
    allowed("PREPARE q(int) AS SELECT $1");
}

/* Settings changed without a SET: set_config() (citrus.tenant keys
 * row-level security) and DO blocks, which could run anything. */
static void test_set_config_and_do(void **state)
{
    (void)state;
    refused_as("SELECT set_config('citrus.tenant', 'b:1', true)", "set_config()");
    refused_as("select * from orders where pg_catalog.SET_CONFIG('citrus.tenant','b:1',true) "
               "is not null",
               "set_config()");
    refused_as("SELECT \"set_config\"('citrus.tenant', 'b:1', true)", "set_config()");
    refused_as("SELECT 1; SELECT set_config('a.b', 'c', false)", "set_config()");
    refused_as("SELECT U&\"set\\005fconfig\"('citrus.tenant', 'b:1', true)",
               "a U&\"...\" quoted name");
    refused_as("DO $$ BEGIN PERFORM 1; END $$", "DO");
    refused_as("do 'BEGIN NULL; END'", "DO");
    /* the word in a literal or a comment is not a call */
    allowed("SELECT 'set_config(x)' AS s -- set_config(\n");
    allowed("SELECT current_setting('citrus.tenant', true)");
    allowed("SELECT set_config_count FROM t");
    allowed("SELECT U&'d\\0061t\\+000061' AS s");
}

static void test_set_and_reset(void **state)
{
    (void)state;
    refused_as("SET search_path = evil", "SET");
    refused_as("set statement_timeout to 0", "SET");
    refused_as("SET SESSION search_path = evil", "SET SESSION");
    refused_as("SET SESSION AUTHORIZATION postgres", "SET SESSION");
    refused_as("SET ROLE postgres", "SET");
    refused_as("SET", "SET");
    refused_as("RESET ALL", "RESET");
    refused_as("reset search_path", "RESET");
    /* what lasts only until the transaction ends */
    allowed("SET LOCAL statement_timeout = 100");
    allowed("set local search_path to public");
    allowed("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    allowed("SET CONSTRAINTS ALL DEFERRED");
    /* but not the router's own, nor another role */
    refused_as("SET LOCAL citrus.tenant = 'b'", "SET LOCAL citrus.*");
    refused_as("SET LOCAL CITRUS . tenant TO 'b'", "SET LOCAL citrus.*");
    refused_as("SET LOCAL \"citrus.tenant\" = 'b'", "SET LOCAL with a quoted parameter name");
    refused_as("SET LOCAL U&\"citrus.tenant\" = 'b'", "SET LOCAL with a quoted parameter name");
    refused_as("SET LOCAL ROLE postgres", "SET LOCAL ROLE");
    refused_as("SET LOCAL SESSION AUTHORIZATION postgres", "SET LOCAL SESSION AUTHORIZATION");
    refused_as("SET LOCAL", "SET LOCAL with a quoted parameter name");
}

static void test_ordinary_statements(void **state)
{
    (void)state;
    allowed("SELECT 1");
    allowed("INSERT INTO t VALUES ($1)");
    allowed("UPDATE t SET a = 1"); /* SET, but not first */
    allowed("SELECT begin, commit FROM t");
    allowed("WITH x AS (SELECT 1) SELECT * FROM x");
    allowed("beginning");
    allowed("commits");
    allowed("settings");
    allowed("");
    allowed("   ;;  ");
    allowed("-- COMMIT");
    allowed("/* COMMIT */ SELECT 1");
    allowed("SELECT 'a; COMMIT'");
    allowed("SELECT 'it''s; COMMIT'");
    allowed("SELECT \"a;commit\" FROM t");
    allowed("SELECT 1; SELECT 2");
    /* a function body in dollar quotes is not the statement's text */
    allowed("CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql");
    refused_as("DO $body$ BEGIN PERFORM 1; COMMIT; END $body$", "DO"); /* DO itself, not its body */
    allowed("SELECT $1; -- $$ COMMIT");
    /* bodies of triggers and BEGIN ATOMIC functions */
    allowed("CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; "
            "UPDATE v SET a = CASE WHEN 1 THEN 2 END; END");
    allowed("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END");
    refused_as("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; COMMIT", "COMMIT");
    allowed("SELECT $$ unterminated; COMMIT"); /* PostgreSQL refuses it; SQLite: 2 statements */
    allowed("SELECT 'unterminated; COMMIT");
}

static void test_comments_and_later_statements(void **state)
{
    (void)state;
    refused_as("  \n\t-- lead\n/* block */ commit", "COMMIT");
    refused_as("SELECT 1; COMMIT", "COMMIT");
    refused_as("SELECT 1;COMMIT;SELECT 2", "COMMIT");
    refused_as("INSERT INTO t VALUES (';'); ROLLBACK", "ROLLBACK");
    refused_as("SELECT $$;$$; SET x = 1", "SET");
    refused_as("SELECT $a$ $$ $a$; BEGIN", "BEGIN");
    /* PostgreSQL nests block comments, SQLite does not: either reading */
    refused_as("/* /* */ COMMIT; */ SELECT 1", "COMMIT");
    refused_as("/* /* */ */ COMMIT", "COMMIT");
    /* SQLite's identifier quotes are not PostgreSQL's */
    refused_as("SELECT [a;b]; COMMIT", "COMMIT");
    refused_as("SELECT `a;b`; COMMIT", "COMMIT");
    refused_as("SELECT 1 FROM [x; COMMIT]", "COMMIT"); /* PostgreSQL's reading */
    /* SQLite reads $a$ as a parameter: the SQLite driver refuses a second
     * statement, PostgreSQL reads one statement */
    allowed("SELECT $a$; COMMIT; $a$");
    /* SQLite's reading is of the first statement only */
    refused_as("/* /* */ COMMIT */", "COMMIT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_verbs),
        cmocka_unit_test(test_set_and_reset),
        cmocka_unit_test(test_set_config_and_do),
        cmocka_unit_test(test_ordinary_statements),
        cmocka_unit_test(test_comments_and_later_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* core/sqlclass.h — whether a piece of SQL changes transaction or session
 * state: the statements the router refuses in /v1/query and /v1/tx,
 * because it begins and ends every transaction itself and hands pooled
 * connections from one request to the next.
 *
 * Refused, by their first keyword(s), case-insensitively, past blanks,
 * "--" comments and block comments: BEGIN, START (TRANSACTION), COMMIT
 * (and COMMIT PREPARED), ROLLBACK (ROLLBACK TO, ROLLBACK PREPARED), END,
 * ABORT, SAVEPOINT, RELEASE, PREPARE TRANSACTION, RESET (every form), and
 * SET in every form but three that only last until the transaction ends:
 * SET LOCAL <parameter>, SET TRANSACTION ... and SET CONSTRAINTS ....
 * SET LOCAL is still refused for ROLE, SESSION AUTHORIZATION and the
 * citrus.* parameters (citrus.tenant is the router's: row-level security
 * is keyed on it). DO (an anonymous code block, which could run SET) and,
 * in PostgreSQL's reading, any call of set_config() (a word or quoted
 * name anywhere in a statement; it changes settings without a SET) are
 * refused too. PREPARE name AS ... (a prepared query) is not refused.
 *
 The text is read twice, and refused when either reading finds one of
 * the above. As PostgreSQL reads it (block comments nest, $tag$...$tag$
 * quotes), every statement: the first and the one after each ";" outside
 * literals and comments (the router's extended-protocol statements refuse
 * a second one anyway); in a CREATE, a ";" inside BEGIN ... END (a
 * trigger's body, BEGIN ATOMIC) does not end it. As SQLite reads it (block comments do not nest,
 * [...] and `...` quote identifiers), the first statement only: the SQLite
 * driver refuses a text with a second statement, and SQLite's reading of
 * a PostgreSQL function body ($$ BEGIN ...; END $$) would find an END in
 * it. So no comment written the way one database reads it hides a COMMIT
 * from the other. Unterminated literals and comments end the text (the
 * database refuses such a statement anyway). */
#ifndef CITRUS_CORE_SQLCLASS_H
#define CITRUS_CORE_SQLCLASS_H

/* The kind of the first statement in sql that changes transaction or
 * session state, as the words to name it in an error ("COMMIT", "SET",
 * "ROLLBACK TO", "SET LOCAL citrus.*", ...: a static string), or NULL when
 * no statement does. sql: NUL-terminated. */
const char *sqlclass_txcontrol(const char *sql);

#endif

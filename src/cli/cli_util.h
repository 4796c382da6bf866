/* cli/cli_util.h — what the request commands of the CLI (`citrus kv`,
 * `shard`, `tenant`, `route`) share: exit codes, usage errors, the options
 * every one of them takes, verb dispatch, requests that insist on a 2xx
 * answer and printing those answers.
 *
 * Messages go to stderr as "error: ..." (runtime) or "citrus CMD: ...\nTry
 * 'citrus CMD --help'." (usage); answers go to stdout. Every function here
 * that takes a request path takes NULL for one that could not be allocated:
 * it then prints "error: out of memory" and fails. Paths stay the
 * caller's. */
#ifndef CITRUS_CLI_CLI_UTIL_H
#define CITRUS_CLI_CLI_UTIL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "net/client.h"

/* Exit codes: a runtime error (including an error answer), bad usage, a
 * request the server refused as not authenticated (401: no token, or one
 * it does not accept) and one it refused as forbidden (403: the token
 * lacks the role or scope). 3 is left out: it is nothing here. */
#define CLI_EXIT_RUNTIME 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_UNAUTHENTICATED 4
#define CLI_EXIT_FORBIDDEN 5

/* Option values: --endpoint is CLI_OPT_ENDPOINT, the credentials
 * (CLI_LONG_OPTS_CREDS) follow it; a command numbers its own long-only
 * options from CLI_OPT_FIRST up, and CLI_BIT() turns those into the bits of
 * cli_opts.seen and cli_verb.allowed. */
enum {
    CLI_OPT_ENDPOINT = 256,
    CLI_OPT_TOKEN,
    CLI_OPT_TOKEN_FILE,
    CLI_OPT_CACERT,
    CLI_OPT_CERT,
    CLI_OPT_KEY,
    CLI_OPT_FIRST
};
#define CLI_BIT(opt) (1u << ((opt)-CLI_OPT_FIRST))

/* The options that say how to reach the server: the bearer token and the
 * TLS files (see cli_creds). */
#define CLI_LONG_OPTS_CREDS                                                                        \
    {"token", required_argument, NULL, CLI_OPT_TOKEN},                                             \
        {"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE},                               \
        {"cacert", required_argument, NULL, CLI_OPT_CACERT},                                       \
        {"cert", required_argument, NULL, CLI_OPT_CERT},                                           \
    {                                                                                              \
        "key", required_argument, NULL, CLI_OPT_KEY                                                \
    }

/* A command's table of long options starts with CLI_LONG_OPTS_COMMON
 * (--endpoint, --output, the credentials) and ends with CLI_LONG_OPTS_END
 * (--help, then the terminator). */
#define CLI_LONG_OPTS_COMMON                                                                       \
    {"endpoint", required_argument, NULL, CLI_OPT_ENDPOINT}, CLI_LONG_OPTS_CREDS,                  \
    {                                                                                              \
        "output", required_argument, NULL, 'o'                                                     \
    }
#define CLI_LONG_OPTS_END                                                                          \
    {"help", no_argument, NULL, 'h'},                                                              \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

/* The --help lines of --endpoint, of -o (the usual wording) and of -h;
 * CLI_USAGE_OPTIONS is the three of them. */
#define CLI_USAGE_ENDPOINT                                                                         \
    "  --endpoint URL    server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")" \
    "\n"
#define CLI_USAGE_OUTPUT "  -o, --output FMT  text (default) or json (the server's JSON answer)\n"
#define CLI_USAGE_HELP "  -h, --help        show this help\n"
/* The --help lines of the credentials and what the exit codes for a
 * refused request are. */
#define CLI_USAGE_CREDS                                                                            \
    "  --token TOKEN     API key or JWT, sent as Authorization: Bearer (default:\n"                \
    "                    $CITRUS_TOKEN, else the file $CITRUS_TOKEN_FILE)\n"                       \
    "  --token-file FILE read the token from the first line of FILE (keep it mode 0600)\n"         \
    "  --cacert FILE     verify an https server against this CA (default: $CITRUS_CACERT,\n"       \
    "                    else the system's CAs)\n"                                                 \
    "  --cert FILE       client certificate for mutual TLS (default: $CITRUS_CERT)\n"              \
    "  --key FILE        its private key (default: $CITRUS_KEY, else in --cert's file)\n"
#define CLI_USAGE_EXIT_AUTH "4 not authenticated (401), 5 forbidden (403)"
#define CLI_USAGE_OPTIONS CLI_USAGE_ENDPOINT CLI_USAGE_CREDS CLI_USAGE_OUTPUT CLI_USAGE_HELP

/* Credentials as given on the command line (NULL: not given). */
typedef struct cli_creds {
    const char *token;      /* --token */
    const char *token_file; /* --token-file */
    const char *cacert;     /* --cacert */
    const char *cert;       /* --cert */
    const char *key;        /* --key */
} cli_creds;

/* Credentials as used: the flags, else the environment. */
typedef struct cli_auth {
    char *token;                     /* malloc'd (wiped by cli_auth_clear), or NULL: send none */
    const char *cacert, *cert, *key; /* the flag's, the environment's, or NULL */
} cli_auth;

/* A command, as the shared option and verb handling sees it. */
typedef struct cli_cmd {
    const char *name;               /* "kv": messages say "citrus kv: ..." */
    const char *usage;              /* the --help text */
    const struct option *long_opts; /* for getopt_long; see CLI_LONG_OPTS_COMMON */
    const char *missing;            /* "VERB: missing <missing>" (too few arguments) */
    const char *empty;              /* "VERB: <empty>" for an empty argument; NULL: allowed */
} cli_cmd;

/* What every command line carries besides the command's own options. */
typedef struct cli_opts {
    const char *endpoint; /* --endpoint, else client_default_endpoint() */
    cli_creds creds;      /* --token, --token-file, --cacert, --cert, --key */
    bool json;            /* -o json */
    unsigned seen;        /* CLI_BIT() of every command option given */
    char **pos;           /* positional arguments (after cli_pick_verb: after the verb) */
    int npos;
} cli_opts;

/* One verb of a command. A command's own verb type starts with a cli_verb
 * (and adds, say, the function that runs it), so that cli_pick_verb can
 * look through an array of them. */
typedef struct cli_verb {
    const char *name;
    int min_pos, max_pos; /* how many arguments follow the verb */
    unsigned allowed;     /* CLI_BIT()s of the command options it takes */
} cli_verb;

/* Prints "citrus CMD: <fmt...>" and "Try 'citrus CMD --help'." to stderr,
 * CMD being cmd (say "kv"). Returns CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const char *cmd, const char *fmt, ...);

/* Prints "error: out of memory" to stderr. Returns CLI_EXIT_RUNTIME. */
int cli_out_of_memory(void);

/* Parses argv with getopt_long (optstring ":o:h", cmd->long_opts) into *o,
 * which it first resets (endpoint: client_default_endpoint()). Handles
 * -h/--help (cmd->usage to stdout: returns 0), --endpoint URL, -o/--output
 * json|text, a missing value and an unknown option (usage error: returns
 * CLI_EXIT_USAGE). Every other option, CLI_OPT_FIRST or above, is noted in
 * o->seen and handed to own(ctx, opt, optarg), which returns -1 to go on or
 * an exit code to stop with; own may be NULL when cmd has no such options.
 * Returns -1 when the command should go on, with o->pos/o->npos the
 * positional arguments; else the exit code. */
int cli_parse_args(const cli_cmd *cmd, cli_opts *o, int argc, char **argv,
                   int (*own)(void *ctx, int opt, const char *arg), void *ctx);

/* Finds the verb named by o->pos[0] among the n entries of verbs, each size
 * bytes and starting with a cli_verb, and drops the verb from o->pos. Then
 * checks, in this order, that min_pos..max_pos arguments follow it, that
 * none is empty (when cmd->empty is set) and that it takes every option in
 * o->seen. Returns the verb's entry; else NULL after the usage text (no
 * verb) or a usage error: exit with CLI_EXIT_USAGE. */
const void *cli_pick_verb(const cli_cmd *cmd, cli_opts *o, const void *verbs, size_t n,
                          size_t size);
/* cli_pick_verb over the array verbs (an array, not a pointer). */
#define CLI_PICK_VERB(cmd, o, verbs)                                                               \
    cli_pick_verb((cmd), (o), (verbs), sizeof(verbs) / sizeof((verbs)[0]), sizeof((verbs)[0]))

/* Notes a credential option (CLI_OPT_TOKEN .. CLI_OPT_KEY) in *cr; false
 * when opt is not one (for commands that parse their own options). */
bool cli_creds_option(cli_creds *cr, int opt, const char *arg);

/* The credentials to use, into *out: the token is --token, else the first
 * line of --token-file, else $CITRUS_TOKEN, else the first line of the file
 * $CITRUS_TOKEN_FILE (blanks around it trimmed); the TLS files are the
 * flags, else $CITRUS_CACERT, $CITRUS_CERT, $CITRUS_KEY. A token file
 * readable by group or others gets a warning on stderr (as ssh warns of
 * keys); one that is missing, unreadable or empty, --key without --cert and
 * a token that is no single word of visible ASCII are usage errors of
 * command cmd. The token itself is never printed. Returns 0, or
 * CLI_EXIT_USAGE after the message. Clear *out with cli_auth_clear. */
int cli_auth_load(const char *cmd, const cli_creds *cr, cli_auth *out);
/* Wipes and frees the token; *a is then empty. */
void cli_auth_clear(cli_auth *a);

/* client_new(endpoint) with the credentials cr (cli_auth_load), or NULL
 * after a usage error of command cmd (endpoint not an http(s) URL, bad
 * credentials): exit with CLI_EXIT_USAGE. Free with client_free. */
client *cli_client_new(const char *cmd, const char *endpoint, const cli_creds *cr);

/* Names the command running (argv[1]: "kv"), for the messages about
 * refused requests. */
void cli_set_command(const char *name);

/* For a 401 or 403 from the server (status, and its message), prints
 * "citrus CMD: not authenticated (401): MESSAGE — pass --token, ..." or
 * "citrus CMD: forbidden (403): MESSAGE" and notes the failure for
 * cli_exit_code. Returns its exit code (CLI_EXIT_UNAUTHENTICATED or
 * CLI_EXIT_FORBIDDEN), or 0 without a word for any other status. */
int cli_refused(long status, const char *message);

/* The exit code of a command that returned rc: a runtime failure after a
 * request was refused (cli_refused) becomes that refusal's code. */
int cli_exit_code(int rc);

/* "<base><id escaped as a query value><suffix>" (say "/v1/shards/", an id,
 * "/drain"), malloc'd; NULL when out of memory. */
char *cli_item_path(const char *base, const char *id, const char *suffix);

/* The message of the error answer resp ({"error":{"message"}}) into out;
 * for a body that is not a Citrus error, client_response_error's text. */
void cli_answer_message(const client_response *resp, char *out, size_t len);

/* Prints the error answer resp as "error: <code>: <message>" (see
 * client_response_error), or a 401/403 as cli_refused does; with force_hint and a force_required
 * error, also "hint: add --force to do it anyway". resp is left as it is. */
void cli_print_answer_error(const client_response *resp, bool force_hint);

/* Sends a request (arguments as for client_request) and insists on a 2xx
 * answer: true with *resp filled (caller frees it). Otherwise prints the
 * transport error or the error answer (cli_print_answer_error), leaves
 * *resp empty and returns false. */
bool cli_request(client *c, const char *method, const char *path, const void *body, size_t len,
                 const char *const *headers, bool force_hint, client_response *resp);

/* cli_request with body (a JSON value, or NULL for none) sent as compact
 * application/json, and the --force hint on error answers. False after
 * "error: out of memory" when body cannot be serialised. */
bool cli_request_json(client *c, const char *method, const char *path, const json_t *body,
                      client_response *resp);

/* The body of a 2xx answer as a JSON object (a new reference), or NULL
 * after "error: unexpected answer from the server: <why>". */
json_t *cli_answer_json(const client_response *resp);

/* Writes the body of resp to stdout as it came, ending in one newline. */
void cli_print_body(const client_response *resp);

/* Writes j (NULL: a failed allocation) to stdout as compact JSON and a
 * newline. False after "error: out of memory" when it cannot be
 * serialised. */
bool cli_puts_json(const json_t *j);

/* Flushes stdout. False after "error: writing output: <errno text>" when
 * the output is gone (say, a closed pipe or a full disk). */
bool cli_flush_out(void);

/* Prints the text form of an answer: j is its JSON object, status its HTTP
 * status, ctx what the caller gave cli_print_answer. Returns false after a
 * message on stderr when it cannot. */
typedef bool cli_text_fn(const json_t *j, long status, const void *ctx);

/* Prints the 2xx answer *resp and frees it: with json as it came
 * (cli_print_body), else through text() (after cli_answer_json). Then
 * flushes stdout. Returns 0, or CLI_EXIT_RUNTIME after a message when the
 * answer is not a JSON object, text() fails or the output is gone. */
int cli_print_answer(client_response *resp, bool json, cli_text_fn *text, const void *ctx);

/* The whole of a JSON request whose answer gets printed: cli_request_json,
 * then cli_print_answer. Returns 0 or CLI_EXIT_RUNTIME. */
int cli_exchange_json(client *c, const char *method, const char *path, const json_t *body,
                      bool json, cli_text_fn *text, const void *ctx);

/* Fetches one page of a listing: GET path, whose answer holds the array
 * member (say "items") and "more", the flag that there are further pages.
 * Returns the page (caller decrefs) with *items its array (borrowed) and
 * *more the flag; else NULL after a message: the request's error (the
 * --force hint with force_hint), "error: unexpected answer from the server:
 * no <member>" or, for a page that says there is more but is empty, "error:
 * server says there is more but sent nothing". */
json_t *cli_get_page(client *c, const char *path, const char *member, bool force_hint,
                     json_t **items, bool *more);

/* Sets *after (malloc'd or NULL; replaced) to the "key" of the last entry
 * of items, where the next page starts; leaves it when items is empty.
 * False after "error: out of memory". */
bool cli_advance_after(char **after, const json_t *items);

/* The string member name of j, or dflt when it is absent, not a string or
 * empty. The string belongs to j. */
const char *cli_str_or(const json_t *j, const char *name, const char *dflt);

#endif

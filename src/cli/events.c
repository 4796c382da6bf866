/* cli/events.c — `citrus events publish|tail|lag`: the event bus through
 * /v1/topics and /v1/consumers (docs/events.md, "Operating the bus"). */
#include "cli/events.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/input.h"
#include "core/duration.h"
#include "net/client.h"
#include "sys/clock.h"
#include "wire/envelope.h"

#define usage_error(...) cli_usage_error("events", __VA_ARGS__)

#define PAGE_MAX 1000 /* events the server sends in one page */
#define DEFAULT_SOURCE "/citrus/cli"
#define FOLLOW_EVERY_US 500000 /* --follow asks again every 0.5 s */
#define MAX_PARTITIONS 64

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus events <command> [options]\n"
    "\n"
    "commands:\n"
    "  publish TOPIC (--data JSON | --file FILE) [--event-key K]\n"
    "                               publish: JSON that is an envelope (it has\n"
    "                               \"specversion\") or a batch ({\"events\": [...]}) goes\n"
    "                               as it is; any other JSON is the data of a new\n"
    "                               envelope (--type, --source, --subject, --id)\n"
    "  tail TOPIC [--partition P] [--from-offset N] [--last N] [--follow] [--max N]\n"
    "       [--wait DURATION] [--type T] [--subject S] [--id ID]\n"
    "                               print events without consuming them: the last\n"
    "                               --last (10) of each partition, or from --from-offset;\n"
    "                               --follow waits for new ones until --max are printed\n"
    "  lag [--group G]              consumer groups: committed offset, end, lag and\n"
    "                               events in flight per topic and partition\n"
    "\n"
    "publish options:\n"
    "  --data JSON       the event, batch or data\n"
    "  --file FILE       the same from FILE (- for standard input)\n"
    "  --event-key K     the message key (order is kept per key); default: the\n"
    "                    envelope's subject, else its id\n"
    "  --type T          new envelope: its type (required then)\n"
    "  --source S        new envelope: its source (default " DEFAULT_SOURCE ")\n"
    "  --subject S       new envelope: its subject\n"
    "  --id ID           new envelope: its id (default: a new UUID)\n"
    "\n"
    "tail options:\n"
    "  --wait DURATION   follow (as --follow) for at most DURATION (30s, 500ms, 2m):\n"
    "                    with --max, fewer than --max events by then is an error\n"
    "                    (exit 1); without, the tail ends there (exit 0)\n"
    "  --type T          print (and count for --max) only events of type T\n"
    "  --subject S       print (and count for --max) only events whose subject is S\n"
    "  --id ID           print (and count for --max) only events whose id is ID\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown topic or a refused event),\n"
    "2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

enum {
    OPT_DATA = CLI_OPT_FIRST,
    OPT_FILE,
    OPT_EVENT_KEY,
    OPT_TYPE,
    OPT_SOURCE,
    OPT_SUBJECT,
    OPT_ID,
    OPT_PARTITION,
    OPT_FROM_OFFSET,
    OPT_LAST,
    OPT_FOLLOW,
    OPT_MAX,
    OPT_GROUP,
    OPT_WAIT,
};

#define BIT(opt) CLI_BIT(opt)
#define ENVELOPE_BITS (BIT(OPT_TYPE) | BIT(OPT_SOURCE) | BIT(OPT_SUBJECT) | BIT(OPT_ID))

typedef struct ev_args {
    cli_opts cli;
    const char *data, *file, *key, *type, *source, *subject, *id, *group;
    long long partition;   /* -1: every partition */
    long long from_offset; /* -1: --last from the end */
    long long last, max;   /* max 0: no bound (without --follow) */
    bool follow;           /* set by --wait too */
    int64_t wait_ms;       /* -1: --follow without a deadline */
    const char *wait;      /* --wait as given, for messages */
} ev_args;

typedef struct ev_verb {
    cli_verb v;
    int (*run)(client *c, const ev_args *a);
} ev_verb;

/* ---- publish ---- */

static bool text_published(const json_t *j, long status, const void *ctx)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "events"), i, e)
    {
        printf("%s  partition %" JSON_INTEGER_FORMAT "  offset %" JSON_INTEGER_FORMAT "  key %s\n",
               cli_str_or(e, "id", "?"), json_integer_value(json_object_get(e, "partition")),
               json_integer_value(json_object_get(e, "offset")), cli_str_or(e, "key", "-"));
    }
    return true;
}

/* The body to send for the JSON input j: j itself when it is an envelope
 * or a batch, else a new envelope around it (a new reference, or NULL
 * after a usage error). */
static json_t *publish_body(const ev_args *a, json_t *j, int *rc)
{
    bool as_is =
        json_is_object(j) && (json_object_get(j, "specversion") || json_object_get(j, "events"));
    if (as_is) {
        if (a->cli.seen & ENVELOPE_BITS) {
            *rc = usage_error("publish: --type, --source, --subject and --id make an envelope "
                              "around plain data; this input is an envelope or a batch already");
            return NULL;
        }
        return json_incref(j);
    }
    if (!a->type) {
        *rc = usage_error("publish: plain data needs --type T for its envelope (or send a "
                          "whole envelope)");
        return NULL;
    }
    envelope_spec spec = {.id = a->id,
                          .type = a->type,
                          .source = a->source ? a->source : DEFAULT_SOURCE,
                          .subject = a->subject,
                          .time_ms = clock_wall_ms(NULL),
                          .data = j};
    envelope ev;
    errdetail e;
    if (envelope_build(&spec, &ev, &e) < 0) {
        *rc = usage_error("publish: %s", e.message);
        return NULL;
    }
    json_t *body = json_incref(ev.doc);
    envelope_clear(&ev);
    return body;
}

static int ev_publish(client *c, const ev_args *a)
{
    if (!a->data == !a->file)
        return usage_error("publish: give the event with --data JSON or --file FILE");
    char *text = NULL;
    size_t len = 0;
    if (a->file) {
        errdetail e;
        if (input_read(a->file, &text, &len, &e) < 0) {
            fprintf(stderr, "error: %s\n", e.message);
            return CLI_EXIT_RUNTIME;
        }
    }
    json_error_t jerr;
    json_t *j = a->file ? json_loadb(text, len, JSON_DECODE_ANY, &jerr)
                        : json_loads(a->data, JSON_DECODE_ANY, &jerr);
    free(text);
    if (!j)
        return usage_error("publish: %s is not JSON: %s", a->file ? a->file : "--data", jerr.text);
    int rc = 0;
    json_t *body = publish_body(a, j, &rc);
    json_decref(j);
    if (!body)
        return rc;
    char *key = a->key ? client_escape_query(a->key) : NULL;
    char *path = NULL;
    if (!a->key || key) {
        char *q = NULL;
        if (!key || asprintf(&q, "/events?key=%s", key) >= 0)
            path = cli_item_path("/v1/topics/", a->cli.pos[0], q ? q : "/events");
        free(q);
    }
    free(key);
    rc = cli_exchange_json(c, "POST", path, body, a->cli.json, text_published, NULL);
    free(path);
    json_decref(body);
    return rc;
}

/* ---- tail ---- */

/* The topic's partitions' ranges from GET /v1/topics: their count, or -1
 * after a message. */
static int topic_ranges(client *c, const char *topic, int64_t *low, int64_t *high)
{
    client_response resp;
    if (!cli_request(c, "GET", "/v1/topics", NULL, 0, NULL, false, &resp))
        return -1;
    json_t *page = cli_answer_json(&resp);
    client_response_free(&resp);
    if (!page)
        return -1;
    size_t i, k;
    json_t *t, *o;
    int n = -1;
    json_array_foreach(json_object_get(page, "topics"), i, t)
    {
        if (strcmp(cli_str_or(t, "name", ""), topic) != 0)
            continue;
        n = 0;
        json_array_foreach(json_object_get(t, "offsets"), k, o)
        {
            if (n == MAX_PARTITIONS)
                break;
            low[n] = json_integer_value(json_object_get(o, "low"));
            high[n] = json_integer_value(json_object_get(o, "high"));
            n++;
        }
    }
    json_decref(page);
    if (n < 0)
        fprintf(stderr, "error: no topic '%s' (citrus events: GET /v1/topics lists them)\n", topic);
    return n;
}

/* Whether the envelope ev's attribute name is want (NULL: anything). */
static bool attr_is(const json_t *ev, const char *name, const char *want)
{
    return !want || strcmp(cli_str_or(ev, name, ""), want) == 0;
}

/* Whether m passes tail's --type, --subject and --id (each exact). */
static bool tail_wants(const ev_args *a, const json_t *m)
{
    const json_t *ev = json_object_get(m, "event");
    return attr_is(ev, "type", a->type) && attr_is(ev, "subject", a->subject) &&
           attr_is(ev, "id", a->id);
}

static bool print_event(const ev_args *a, int part, json_t *m)
{
    if (a->cli.json) {
        json_object_set_new(m, "partition", json_integer(part));
        return cli_puts_json(m);
    }
    json_t *ev = json_object_get(m, "event");
    char *body = ev ? json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    printf("%d/%" JSON_INTEGER_FORMAT "  %s  %s  %s\n", part,
           json_integer_value(json_object_get(m, "offset")), cli_str_or(m, "time", "?"),
           cli_str_or(m, "key", "-"), body ? body : cli_str_or(m, "value_base64", "(not JSON)"));
    free(body);
    return true;
}

/* Reads partition part from *next to its end (pages), printing; *printed
 * grows. 0, or the exit code after a message. */
static int tail_partition(client *c, const ev_args *a, int part, int64_t *next, long long *printed)
{
    bool more = true;
    while (more && (!a->max || *printed < a->max)) {
        long long want = PAGE_MAX;
        if (a->max && a->max - *printed < want)
            want = a->max - *printed;
        char sfx[128];
        snprintf(sfx, sizeof(sfx), "/events?partition=%d&from_offset=%lld&limit=%lld", part,
                 (long long)*next, want);
        char *path = cli_item_path("/v1/topics/", a->cli.pos[0], sfx);
        json_t *items;
        json_t *page = cli_get_page(c, path, "events", false, &items, &more);
        free(path);
        if (!page)
            return CLI_EXIT_RUNTIME;
        size_t i;
        json_t *m;
        bool ok = true;
        json_array_foreach(items, i, m)
        {
            if (a->max && *printed >= a->max)
                break; /* a filtered page can hold more than --max wants */
            if (!tail_wants(a, m))
                continue;
            ok = ok && print_event(a, part, m);
            (*printed)++;
        }
        *next = json_integer_value(json_object_get(page, "next_offset"));
        json_decref(page);
        if (!ok || !cli_flush_out())
            return CLI_EXIT_RUNTIME;
    }
    return 0;
}

static int ev_tail(client *c, const ev_args *a)
{
    int64_t low[MAX_PARTITIONS], high[MAX_PARTITIONS], next[MAX_PARTITIONS];
    int n = topic_ranges(c, a->cli.pos[0], low, high);
    if (n < 0)
        return CLI_EXIT_RUNTIME;
    if (a->partition >= n) {
        fprintf(stderr, "error: topic '%s' has partitions 0..%d\n", a->cli.pos[0], n - 1);
        return CLI_EXIT_RUNTIME;
    }
    int first = a->partition >= 0 ? (int)a->partition : 0;
    int last = a->partition >= 0 ? (int)a->partition : n - 1;
    for (int p = first; p <= last; p++) {
        next[p] = high[p] - a->last > low[p] ? high[p] - a->last : low[p];
        if (a->from_offset >= 0)
            next[p] = a->from_offset;
    }
    long long printed = 0;
    int64_t deadline = a->wait_ms >= 0 ? clock_mono_ms(NULL) + a->wait_ms : 0;
    for (;;) {
        for (int p = first; p <= last; p++) {
            int rc = tail_partition(c, a, p, &next[p], &printed);
            if (rc)
                return rc;
        }
        if (!a->follow || (a->max && printed >= a->max))
            return 0;
        int64_t pause = FOLLOW_EVERY_US / 1000;
        if (a->wait_ms >= 0) {
            int64_t left = deadline - clock_mono_ms(NULL);
            if (left <= 0 && a->max) {
                fprintf(stderr, "error: %lld of %lld events within --wait %s\n", printed, a->max,
                        a->wait);
                return CLI_EXIT_RUNTIME;
            }
            if (left <= 0)
                return 0;
            if (left < pause)
                pause = left; /* one more look at the deadline */
        }
        usleep((useconds_t)pause * 1000);
    }
}

/* ---- lag ---- */

static bool text_lag(const json_t *j, long status, const void *ctx)
{
    printf("%-28s  %-32s  %9s  %10s  %10s  %8s  %9s\n", "GROUP", "TOPIC", "PARTITION", "COMMITTED",
           "END", "LAG", "IN_FLIGHT");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "consumers"), i, r)
    {
        printf("%-28s  %-32s  %9" JSON_INTEGER_FORMAT "  %10" JSON_INTEGER_FORMAT
               "  %10" JSON_INTEGER_FORMAT "  %8" JSON_INTEGER_FORMAT "  %9" JSON_INTEGER_FORMAT
               "\n",
               cli_str_or(r, "group", "?"), cli_str_or(r, "topic", "?"),
               json_integer_value(json_object_get(r, "partition")),
               json_integer_value(json_object_get(r, "committed")),
               json_integer_value(json_object_get(r, "end")),
               json_integer_value(json_object_get(r, "lag")),
               json_integer_value(json_object_get(r, "in_flight")));
    }
    if (json_is_true(json_object_get(j, "more")))
        printf("(more rows: narrow with --group)\n");
    return true;
}

static int ev_lag(client *c, const ev_args *a)
{
    char *path =
        a->group ? cli_item_path("/v1/consumers?group=", a->group, "") : strdup("/v1/consumers");
    int rc = cli_exchange_json(c, "GET", path, NULL, a->cli.json, text_lag, NULL);
    free(path);
    return rc;
}

static const ev_verb verbs[] = {
    {{"publish", 1, 1, BIT(OPT_DATA) | BIT(OPT_FILE) | BIT(OPT_EVENT_KEY) | ENVELOPE_BITS},
     ev_publish},
    {{"tail", 1, 1,
      BIT(OPT_PARTITION) | BIT(OPT_FROM_OFFSET) | BIT(OPT_LAST) | BIT(OPT_FOLLOW) | BIT(OPT_MAX) |
          BIT(OPT_WAIT) | BIT(OPT_TYPE) | BIT(OPT_SUBJECT) | BIT(OPT_ID)},
     ev_tail},
    {{"lag", 0, 0, BIT(OPT_GROUP)}, ev_lag},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"data", required_argument, NULL, OPT_DATA},
    {"file", required_argument, NULL, OPT_FILE},
    {"event-key", required_argument, NULL, OPT_EVENT_KEY},
    {"type", required_argument, NULL, OPT_TYPE},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"id", required_argument, NULL, OPT_ID},
    {"partition", required_argument, NULL, OPT_PARTITION},
    {"from-offset", required_argument, NULL, OPT_FROM_OFFSET},
    {"last", required_argument, NULL, OPT_LAST},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"max", required_argument, NULL, OPT_MAX},
    {"group", required_argument, NULL, OPT_GROUP},
    {"wait", required_argument, NULL, OPT_WAIT},
    CLI_LONG_OPTS_END,
};

static const cli_cmd events_cmd = {.name = "events",
                                   .usage = usage_text,
                                   .long_opts = long_opts,
                                   .missing = "TOPIC",
                                   .empty = "arguments must not be empty"};

/* A count >= min into *out, else a usage error naming the option. */
static int count_arg(const char *opt, const char *arg, long long min, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < min)
        return usage_error("--%s needs an integer >= %lld, not '%s'", opt, min, arg);
    *out = v;
    return -1;
}

static int ev_option(void *ctx, int opt, const char *arg)
{
    ev_args *a = ctx;
    switch (opt) {
    case OPT_DATA:
        a->data = arg;
        break;
    case OPT_FILE:
        a->file = arg;
        break;
    case OPT_EVENT_KEY:
        a->key = arg;
        break;
    case OPT_TYPE:
        a->type = arg;
        break;
    case OPT_SOURCE:
        a->source = arg;
        break;
    case OPT_SUBJECT:
        a->subject = arg;
        break;
    case OPT_ID:
        a->id = arg;
        break;
    case OPT_GROUP:
        a->group = arg;
        break;
    case OPT_FOLLOW:
        a->follow = true;
        break;
    case OPT_WAIT:
        if (duration_parse_ms(arg, &a->wait_ms) < 0)
            return usage_error("--wait needs a duration like 30s, 500ms or 2m, not '%s'", arg);
        a->wait = arg;
        a->follow = true;
        break;
    case OPT_PARTITION:
        return count_arg("partition", arg, 0, &a->partition);
    case OPT_FROM_OFFSET:
        return count_arg("from-offset", arg, 0, &a->from_offset);
    case OPT_LAST:
        return count_arg("last", arg, 0, &a->last);
    case OPT_MAX:
        return count_arg("max", arg, 1, &a->max);
    }
    return -1;
}

int cli_events_main(int argc, char **argv)
{
    ev_args a = {.partition = -1, .from_offset = -1, .last = 10, .wait_ms = -1};
    int rc = cli_parse_args(&events_cmd, &a.cli, argc, argv, ev_option, &a);
    if (rc >= 0)
        return rc;
    const ev_verb *v = CLI_PICK_VERB(&events_cmd, &a.cli, verbs);
    if (!v)
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(events_cmd.name, a.cli.endpoint, &a.cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}

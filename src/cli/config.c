/* cli/config.c — table-driven configuration: file, environment, flags. */
#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

typedef enum { F_STR, F_INT, F_ENUM } field_type;

typedef struct field {
    const char *section;
    const char *name;
    const char *flag; /* long flag without dashes, or NULL */
    field_type type;
    size_t offset;
    size_t size;         /* F_STR/F_ENUM: buffer size */
    int64_t min, max;    /* F_INT bounds */
    const char *choices; /* F_ENUM: '|'-separated */
    const char *help;
} field;

#define STR(sec, nm, flg, member, help)                                                            \
    {                                                                                              \
        sec, nm, flg, F_STR, offsetof(citrus_config, member),                                      \
            sizeof(((citrus_config *)0)->member), 0, 0, NULL, help                                 \
    }
#define INT(sec, nm, flg, member, lo, hi, help)                                                    \
    {                                                                                              \
        sec, nm, flg, F_INT, offsetof(citrus_config, member), 0, lo, hi, NULL, help                \
    }
#define ENUM(sec, nm, flg, member, choices, help)                                                  \
    {                                                                                              \
        sec, nm, flg, F_ENUM, offsetof(citrus_config, member),                                     \
            sizeof(((citrus_config *)0)->member), 0, 0, choices, help                              \
    }

static const field fields[] = {
    STR("cluster", "node_id", "node-id", node_id, "this node's id"),
    STR("server", "listen", "listen", listen, "API listen address HOST:PORT"),
    INT("server", "threads", "threads", threads, 1, 256, "HTTP worker threads"),
    INT("server", "max_connections", "max-connections", max_connections, 1, 1000000,
        "concurrent connection limit"),
    INT("server", "idle_timeout_s", "idle-timeout", idle_timeout_s, 1, 86400,
        "idle connection timeout, seconds"),
    INT("server", "max_header_bytes", "max-header-bytes", max_header_bytes, 4096, 1048576,
        "per-connection header memory"),
    INT("server", "max_body_bytes", "max-body-bytes", max_body_bytes, 1024, 268435456,
        "request body limit"),
    ENUM("catalog", "backend", "catalog-backend", backend, "embedded", "catalog store backend"),
    STR("catalog", "data_dir", "data-dir", data_dir, "data directory of the embedded store"),
    INT("catalog", "max_value_bytes", "max-value-bytes", max_value_bytes, 1, 268435456,
        "largest value accepted"),
    INT("catalog", "history_keep", "history-keep", history_keep, 100, 100000000,
        "revisions of change history kept for watches"),
    INT("catalog", "max_watch_timeout_s", "max-watch-timeout", max_watch_timeout_s, 1, 3600,
        "longest long-poll wait, seconds"),
    ENUM("log", "level", "log-level", log_level, "debug|info|warn|error", "lowest level logged"),
    INT("cluster", "session_ttl_s", "session-ttl", session_ttl_s, 1, 300,
        "lease TTL of this node's registration and controller candidacy, seconds"),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Sections reserved for later components: accepted if they are objects. */
static const char *const reserved_sections[] = {
    "bus", "records", "router", "provisioner", "auth", "notification_filter", NULL};

void config_defaults(citrus_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->node_id, sizeof(c->node_id), "node1");
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8081");
    c->threads = 4;
    c->max_connections = 4096;
    c->idle_timeout_s = 60;
    c->max_header_bytes = 32 * 1024LL;
    c->max_body_bytes = 1024 * 1024LL;
    snprintf(c->backend, sizeof(c->backend), "embedded");
    snprintf(c->data_dir, sizeof(c->data_dir), "./citrus-data");
    c->max_value_bytes = 1024 * 1024LL;
    c->history_keep = 100000;
    c->max_watch_timeout_s = 300;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    c->session_ttl_s = 5;
}

static bool enum_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

/* Sets one field from text. */
static int set_field(citrus_config *c, const field *f, const char *v, char *err, size_t errlen)
{
    char *base = (char *)c + f->offset;
    if (f->type == F_INT) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < f->min || n > f->max) {
            snprintf(err, errlen, "%s.%s: must be an integer from %lld to %lld (got '%s')",
                     f->section, f->name, (long long)f->min, (long long)f->max, v);
            return CITRUS_EINVAL;
        }
        *(int64_t *)base = n;
        return 0;
    }
    if (f->type == F_ENUM && !enum_ok(f->choices, v)) {
        snprintf(err, errlen, "%s.%s: must be one of %s (got '%s')", f->section, f->name,
                 f->choices, v);
        return CITRUS_EINVAL;
    }
    if (strlen(v) == 0 || strlen(v) >= f->size) {
        snprintf(err, errlen, "%s.%s: must be 1 to %zu characters", f->section, f->name,
                 f->size - 1);
        return CITRUS_EINVAL;
    }
    memcpy(base, v, strlen(v) + 1);
    return 0;
}

static const field *find_field(const char *section, const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].section, section) == 0 && strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

static bool section_in_table(const char *s)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].section, s) == 0)
            return true;
    return false;
}

static bool section_known(const char *s)
{
    if (section_in_table(s))
        return true;
    for (size_t i = 0; reserved_sections[i]; i++)
        if (strcmp(reserved_sections[i], s) == 0)
            return true;
    return false;
}

static int apply_json_field(citrus_config *c, const char *sec, const char *name, json_t *v,
                            char *err, size_t errlen)
{
    const field *f = find_field(sec, name);
    if (!f) {
        snprintf(err, errlen, "%s.%s: unknown field", sec, name);
        return CITRUS_EINVAL;
    }
    char buf[64];
    if (f->type == F_INT) {
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s.%s: must be an integer", sec, name);
            return CITRUS_EINVAL;
        }
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return set_field(c, f, buf, err, errlen);
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s.%s: must be a string", sec, name);
        return CITRUS_EINVAL;
    }
    return set_field(c, f, json_string_value(v), err, errlen);
}

/* Applies a parsed config document; path names it in the one message that
 * has no field to name. Takes the reference to root. */
static int apply_root(citrus_config *c, json_t *root, const char *path, char *err, size_t errlen)
{
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: must be a JSON object", path);
        rc = CITRUS_EINVAL;
        goto out;
    }
    const char *sec;
    json_t *obj;
    json_object_foreach(root, sec, obj)
    {
        if (!section_known(sec)) {
            snprintf(err, errlen, "%s: unknown section", sec);
            rc = CITRUS_EINVAL;
            goto out;
        }
        if (!json_is_object(obj)) {
            snprintf(err, errlen, "%s: must be an object", sec);
            rc = CITRUS_EINVAL;
            goto out;
        }
        if (!section_in_table(sec))
            continue; /* a reserved section, read by components that come later */
        const char *name;
        json_t *v;
        json_object_foreach(obj, name, v)
        {
            if ((rc = apply_json_field(c, sec, name, v, err, errlen)) < 0)
                goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int config_load_file(citrus_config *c, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s: line %d: %s", path, je.line, je.text);
        return CITRUS_EINVAL;
    }
    return apply_root(c, root, path, err, errlen);
}

int config_load_text(citrus_config *c, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "config: line %d: %s", je.line, je.text);
        return CITRUS_EINVAL;
    }
    return apply_root(c, root, "config", err, errlen);
}

int config_load_env(citrus_config *c, char *const *envp, char *err, size_t errlen)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        char var[96];
        int n = snprintf(var, sizeof(var), "CITRUS_%s_%s=", fields[i].section, fields[i].name);
        for (int k = 0; k < n; k++)
            var[k] = (char)toupper((unsigned char)var[k]);
        for (char *const *e = envp; e && *e; e++) {
            if (strncmp(*e, var, (size_t)n) != 0)
                continue;
            int rc = set_field(c, &fields[i], *e + n, err, errlen);
            if (rc < 0) {
                size_t used = strlen(err);
                snprintf(err + used, errlen - used, " (from %.*s)", n - 1, var);
                return rc;
            }
        }
    }
    return 0;
}

int config_set_flag(citrus_config *c, const char *flag, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].flag && strcmp(fields[i].flag, flag) == 0)
            return set_field(c, &fields[i], value, err, errlen);
    snprintf(err, errlen, "--%s: unknown option", flag);
    return CITRUS_ENOTFOUND;
}

void config_print_help(void *file)
{
    FILE *f = file;
    citrus_config d;
    config_defaults(&d);
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *fl = &fields[i];
        char def[CONFIG_STR];
        const char *base = (const char *)&d + fl->offset;
        if (fl->type == F_INT)
            snprintf(def, sizeof(def), "%lld", (long long)*(const int64_t *)base);
        else
            snprintf(def, sizeof(def), "%s", base);
        char var[96];
        int n = snprintf(var, sizeof(var), "CITRUS_%s_%s", fl->section, fl->name);
        for (int k = 0; k < n; k++)
            var[k] = (char)toupper((unsigned char)var[k]);
        fprintf(f, "  --%-18s %-32s %s (default %s)\n", fl->flag, var, fl->help, def);
    }
}

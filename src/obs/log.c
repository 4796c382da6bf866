/* obs/log.c — JSON line logger with per-thread correlation ids. */
#include "obs/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dsn.h"
#include "sys/clock.h"

static log_level min_level = LOG_INFO;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char corr_id[129];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level min)
{
    min_level = min;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_correlation(const char *id)
{
    if (!id) {
        corr_id[0] = '\0';
        return;
    }
    snprintf(corr_id, sizeof(corr_id), "%s", id);
}

static void format_ts(char *buf, size_t len)
{
    int64_t ms = clock_wall_ms(NULL);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

bool log_enabled(log_level level)
{
    return level >= min_level;
}

/* The last line of defence: whatever a caller put in, a DSN password or a
 * secret-like value never reaches the log. Takes text; the line to write,
 * or NULL (out of memory: nothing is written rather than the secret). */
static char *redacted(char *text)
{
    if (!strstr(text, "://") && !strcasestr(text, "pass") && !strcasestr(text, "secret") &&
        !strcasestr(text, "token") && !strcasestr(text, "pwd"))
        return text;
    char *clean = dsn_redact_text(text);
    free(text);
    return clean;
}

void log_emit(log_level level, const char *component, const char *msg, json_t *fields)
{
    if (level < min_level) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_ts(ts, sizeof(ts));
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "msg", json_string(msg));
    json_object_set_new(line, "component", json_string(component));
    json_object_set_new(line, "correlation_id", corr_id[0] ? json_string(corr_id) : json_null());
    json_object_set_new(line, "fields", fields ? fields : json_object());
    char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(line);
    if (!text)
        return;
    if (!(text = redacted(text)))
        return;
    pthread_mutex_lock(&out_lock);
    fputs(text, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    free(text);
}

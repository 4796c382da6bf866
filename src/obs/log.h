/* obs/log.h — structured logs: one JSON object per line on stdout.
 *
 * Each line: {"ts","level","msg","component","correlation_id","fields"}.
 * The correlation id is per thread: the HTTP layer sets it for the request a
 * thread is serving, so every line logged while serving it carries it. */
#ifndef CITRUS_OBS_LOG_H
#define CITRUS_OBS_LOG_H

#include <jansson.h>
#include <stdbool.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Lines below min are dropped. Default LOG_INFO. */
void log_set_level(log_level min);
/* Parses "debug"|"info"|"warn"|"error"; returns -1 when unknown. */
int log_level_parse(const char *s);

/* Sets this thread's correlation id (copied; NULL clears it). */
void log_set_correlation(const char *id);

/* Whether lines at level are written (to skip building dropped ones). */
bool log_enabled(log_level level);

/* Writes one line. fields is a JSON object or NULL; its reference is stolen. */
void log_emit(log_level level, const char *component, const char *msg, json_t *fields);

#define log_info(comp, msg, fields) log_emit(LOG_INFO, comp, msg, fields)
#define log_warn(comp, msg, fields) log_emit(LOG_WARN, comp, msg, fields)
#define log_error(comp, msg, fields) log_emit(LOG_ERROR, comp, msg, fields)
#define log_debug(comp, msg, fields) log_emit(LOG_DEBUG, comp, msg, fields)

#endif

/* core/shard.c — the shard record and its lifecycle table (pure: no I/O).
 *
 * The table below is the one place that says which state changes are
 * allowed; everything else (API, provisioner, controller) asks it. Besides
 * the edges drawn in shard.h, draining -> active is allowed: an operator
 * must be able to cancel a drain that was started by mistake. */
#include "core/shard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"

static const char *const state_names[SHARD_NSTATES] = {
    "pending",  "provisioning", "initializing", "active", "read_only",
    "draining", "drained",      "retired",      "failed",
};

#define P SHARD_PENDING
#define V SHARD_PROVISIONING
#define I SHARD_INITIALIZING
#define A SHARD_ACTIVE
#define R SHARD_READ_ONLY
#define D SHARD_DRAINING
#define DD SHARD_DRAINED
#define X SHARD_RETIRED
#define F SHARD_FAILED

/* allowed[from][to]; "any state -> failed" is added in shard_transition_ok. */
static const bool allowed[SHARD_NSTATES][SHARD_NSTATES] = {
    [P] = {[V] = true, [I] = true}, /* provision, or register an existing db */
    [V] = {[I] = true},
    [I] = {[A] = true},
    [A] = {[R] = true, [D] = true},
    [R] = {[A] = true},
    [D] = {[DD] = true, [A] = true}, /* draining -> active cancels a drain */
    [DD] = {[X] = true},
    [X] = {0},
    [F] = {[V] = true}, /* retry */
};

#undef P
#undef V
#undef I
#undef A
#undef R
#undef D
#undef DD
#undef X
#undef F

static bool state_valid(shard_state s)
{
    return (unsigned)s < SHARD_NSTATES;
}

const char *shard_state_name(shard_state s)
{
    return state_valid(s) ? state_names[s] : "unknown";
}

int shard_state_parse(const char *name, shard_state *out)
{
    for (int i = 0; name && i < SHARD_NSTATES; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (shard_state)i;
            return 0;
        }
    }
    return CITRUS_EINVAL;
}

bool shard_transition_ok(shard_state from, shard_state to)
{
    if (!state_valid(from) || !state_valid(to))
        return false;
    if (to == SHARD_FAILED)
        return from != SHARD_FAILED;
    return allowed[from][to];
}

size_t shard_transitions_from(shard_state from, shard_state *out)
{
    size_t n = 0;
    for (int to = 0; to < SHARD_NSTATES; to++) {
        if (!shard_transition_ok(from, (shard_state)to))
            continue;
        if (out)
            out[n] = (shard_state)to;
        n++;
    }
    return n;
}

bool shard_state_serves_reads(shard_state s)
{
    return s == SHARD_ACTIVE || s == SHARD_READ_ONLY || s == SHARD_DRAINING;
}

bool shard_state_serves_writes(shard_state s)
{
    return s == SHARD_ACTIVE || s == SHARD_DRAINING;
}

static bool id_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '_' || c == '-');
}

bool shard_id_valid(const char *id)
{
    if (!id || !id[0])
        return false;
    size_t i = 0;
    for (; id[i]; i++) {
        if (i >= SHARD_ID_MAX || !id_char(id[i], i == 0))
            return false;
    }
    return true;
}

bool shard_weight_valid(double w)
{
    return isfinite(w) && w > 0 && w <= SHARD_WEIGHT_MAX;
}

void shard_init(shard *s)
{
    memset(s, 0, sizeof(*s));
    s->state = SHARD_PENDING;
    s->weight = 1.0;
}

static void event_clear(shard_event *e)
{
    free(e->reason);
    free(e->actor);
    e->reason = e->actor = NULL;
}

void shard_clear(shard *s)
{
    free(s->dsn);
    shard_strings_free(s->replicas, s->nreplicas);
    free(s->zone);
    shard_tags_free(s->tags, s->ntags);
    free(s->template_name);
    free(s->error);
    for (size_t i = 0; i < s->nhistory; i++)
        event_clear(&s->history[i]);
    free(s->history);
    shard_init(s);
}

char **shard_strings_copy(char *const *v, size_t n)
{
    char **c = calloc(n ? n : 1, sizeof(*c));
    for (size_t i = 0; c && i < n; i++)
        if (!(c[i] = strdup(v[i]))) {
            shard_strings_free(c, i);
            return NULL;
        }
    return c;
}

void shard_strings_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

shard_tag *shard_tags_copy(const shard_tag *t, size_t n)
{
    shard_tag *c = calloc(n ? n : 1, sizeof(*c));
    for (size_t i = 0; c && i < n; i++) {
        c[i].key = strdup(t[i].key);
        c[i].value = strdup(t[i].value);
        if (!c[i].key || !c[i].value) {
            shard_tags_free(c, i + 1);
            return NULL;
        }
    }
    return c;
}

void shard_tags_free(shard_tag *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        free(t[i].key);
        free(t[i].value);
    }
    free(t);
}

/* Appends ev (taking its strings), dropping the oldest past the cap. */
static int history_push(shard *s, shard_event *ev)
{
    if (s->nhistory >= SHARD_HISTORY_MAX) {
        event_clear(&s->history[0]);
        memmove(&s->history[0], &s->history[1], (s->nhistory - 1) * sizeof(s->history[0]));
        s->history[s->nhistory - 1] = *ev;
        return 0;
    }
    shard_event *h = realloc(s->history, (s->nhistory + 1) * sizeof(*h));
    if (!h)
        return CITRUS_ENOMEM;
    s->history = h;
    h[s->nhistory++] = *ev;
    return 0;
}

int shard_transition(shard *s, shard_state to, const char *reason, const char *actor,
                     int64_t now_ms)
{
    if (!shard_transition_ok(s->state, to))
        return CITRUS_ECONFLICT;
    shard_event ev = {.at_ms = now_ms, .from = s->state, .to = to, .epoch = s->epoch + 1};
    /* A reason may quote a provisioner's or a driver's message: its DSN
     * passwords and secrets never reach the record (history, error). */
    ev.reason = dsn_redact_text(reason ? reason : "");
    ev.actor = strdup(actor ? actor : "");
    char *error = to == SHARD_FAILED && ev.reason ? strdup(ev.reason) : NULL;
    if (!ev.reason || !ev.actor || (to == SHARD_FAILED && !error) || history_push(s, &ev) < 0) {
        event_clear(&ev);
        free(error);
        return CITRUS_ENOMEM;
    }
    free(s->error);
    s->error = error;
    s->state = to;
    s->epoch++;
    s->updated_ms = now_ms;
    return 0;
}

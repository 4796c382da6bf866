/* provision/types.c — business types: the schema templates directory says
 * which exist (one directory each, named exactly as the type), and an
 * optional <type>/template.json holds per-type settings (see service.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "citrus/errors.h"
#include "provision/schema.h"
#include "provision/service.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* The known types: the directories of templates_dir with a valid template
 * name, exactly as named, sorted; none without a templates directory. */
static json_t *known_types(const shard_service *svc)
{
    json_t *out = json_array();
    DIR *d = svc->templates_dir[0] ? opendir(svc->templates_dir) : NULL;
    if (!out || !d)
        return out;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[2048];
        struct stat st;
        if (!schema_template_valid(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", svc->templates_dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            json_array_append_new(out, json_string(de->d_name));
    }
    closedir(d);
    size_t n = json_array_size(out);
    json_t **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (!v)
        return out;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(out, i));
    qsort(v, n, sizeof(*v), by_name);
    json_array_clear(out);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, v[i]);
    free(v);
    return out;
}

int svc_type_check(const shard_service *svc, const char *type, json_t **known, errdetail *e)
{
    if (known)
        *known = NULL;
    json_t *list = known_types(svc);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (type && strcmp(json_string_value(v), type) == 0)
    {
        json_decref(list);
        return 0;
    }
    if (svc->allow_untemplated_types) {
        json_decref(list);
        return 0;
    }
    char names[1024] = "";
    size_t used = 0;
    json_array_foreach(list, i, v)
    {
        int n = snprintf(names + used, sizeof(names) - used, "%s'%s'", i ? ", " : "",
                         json_string_value(v));
        if (n < 0 || (size_t)n >= sizeof(names) - used) {
            snprintf(names + used, sizeof(names) - used, ", ...");
            break;
        }
        used += (size_t)n;
    }
    int rc = errdetail_set(
        e, CITRUS_EUNKNOWNTYPE, "businessType '%s' has no schema template: %s%s", type ? type : "",
        !svc->templates_dir[0]  ? "no templates directory is configured, so no type is known"
        : json_array_size(list) ? "the known types are "
                                : "the templates directory holds none",
        json_array_size(list) ? names : "");
    if (known)
        *known = list;
    else
        json_decref(list);
    return rc;
}

bool svc_type_strict(void *vsvc, const char *type)
{
    const shard_service *svc = vsvc;
    if (!svc->templates_dir[0] || !schema_template_valid(type))
        return false;
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s/template.json", svc->templates_dir, type);
    json_error_t err;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    bool strict = json_is_true(json_object_get(j, "require_registered"));
    json_decref(j);
    return strict;
}

/* cli/backup.c — `citrus backup`: snapshot a server into a backup file.
 *
 * The file is written as FILE.tmp, synced, read back and verified, then
 * renamed over FILE and the directory synced: FILE is either the previous
 * file or a complete, verified backup, never something in between. */
#include "cli/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "cli/cli_util.h"
#include "net/client.h"
#include "cli/input.h"
#include "cli/snapshot_file.h"
#include "sys/clock.h"
#include "wire/kvjson.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* A snapshot of a big catalog can take a while to produce and send. */
#define BACKUP_TIMEOUT_MS 300000L

static const char usage_text[] =
    "usage: citrus backup -o FILE [--endpoint URL]\n"
    "\n"
    "Copies the whole catalog of a running server, as of one revision, into FILE\n"
    "(written atomically, checksummed; restore it with 'citrus restore').\n"
    "\n"
    "options:\n"
    "  -o, --output FILE  the backup file to write (replaced if it exists)\n"
    "  --endpoint URL     server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT
    ")\n"
    "  -h, --help         show this help\n"
    "\n"
    "credentials:\n" CLI_USAGE_CREDS "\n"
    "Exit status: 0 ok, 1 error, 2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n";

/* Fetches GET /v1/snapshot into *snap. Prints the error and returns false on
 * failure. */
static bool fetch_snapshot(client *c, kv_snapshot *snap)
{
    bool ok = false;
    char why[512];
    errdetail err;
    client_response resp;
    client_set_timeout_ms(c, BACKUP_TIMEOUT_MS);
    /* with its credentials: the file is written 0600 (write_tmp) */
    int rc = client_request(c, "GET", "/v1/snapshot?reveal=true", NULL, 0, NULL, &resp);
    if (rc < 0) {
        fprintf(stderr, "backup: %s\n", client_error(c));
        return false;
    }
    if (resp.status == 401 || resp.status == 403) {
        cli_print_answer_error(&resp, false);
        goto out_resp;
    }
    if (resp.status != 200) {
        client_response_error(&resp, why, sizeof(why));
        fprintf(stderr, "backup: server error: %s\n", why);
        goto out_resp;
    }
    json_t *j = client_response_json(&resp, &err);
    if (!j || kvjson_snapshot_decode(j, snap, &err) < 0) {
        fprintf(stderr, "backup: unexpected snapshot from the server: %s\n", err.message);
        json_decref(j);
        goto out_resp;
    }
    json_decref(j);
    /* A lease may be overdue but not yet reaped: it has nothing left. */
    for (size_t i = 0; i < snap->nleases; i++)
        if (snap->leases[i].remaining < 0)
            snap->leases[i].remaining = 0;
    if (snapshot_file_check(snap, &err) < 0) {
        fprintf(stderr, "backup: the server's snapshot is inconsistent: %s\n", err.message);
        kv_snapshot_free(snap);
        goto out_resp;
    }
    ok = true;
out_resp:
    client_response_free(&resp);
    return ok;
}

/* Makes a rename in path's directory durable. */
static int sync_dir_of(const char *path, errdetail *e)
{
    char *copy = strdup(path);
    if (!copy)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = errdetail_set(e, CITRUS_EIO, "cannot sync directory %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

/* Writes snap to tmp (mode 0600: a backup holds every secret in the catalog)
 * and syncs it. */
static int write_tmp(const char *tmp, const kv_snapshot *snap, errdetail *e)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errdetail_set(e, CITRUS_EIO, "cannot create %s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        errdetail_set(e, CITRUS_EIO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        return CITRUS_EIO;
    }
    int rc = snapshot_file_write(f, snap, clock_wall_ms(NULL) / 1000, e);
    if (rc == 0 && (fflush(f) != 0 || fsync(fd) != 0))
        rc = errdetail_set(e, CITRUS_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = errdetail_set(e, CITRUS_EIO, "cannot write %s: %s", tmp, strerror(errno));
    return rc;
}

/* Reads tmp back and checks that it holds exactly what was meant. */
static int verify_tmp(const char *tmp, const kv_snapshot *snap, errdetail *e)
{
    char *buf;
    size_t len;
    int rc = input_read(tmp, &buf, &len, e);
    if (rc < 0)
        return rc;
    kv_snapshot back;
    rc = snapshot_file_parse(buf, len, &back, e);
    if (rc < 0)
        errdetail_prefix(e, "%s does not read back", tmp);
    else if (back.count != snap->count || back.nleases != snap->nleases ||
             back.revision != snap->revision)
        rc = errdetail_set(e, CITRUS_EIO, "%s reads back different from what was written", tmp);
    kv_snapshot_free(&back);
    free(buf);
    return rc;
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "citrus backup: %s%s\nTry 'citrus backup --help'.\n", msg, arg);
    return EXIT_USAGE;
}

int cli_backup_main(int argc, char **argv)
{
    enum { OPT_ENDPOINT = 256 };
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"endpoint", required_argument, NULL, OPT_ENDPOINT},
        CLI_LONG_OPTS_CREDS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = client_default_endpoint(), *file = NULL;
    cli_creds creds = {0};
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'o':
            file = optarg;
            break;
        case OPT_ENDPOINT:
            endpoint = optarg;
            break;
        case ':':
            return usage_error("missing value for ", argv[optind - 1]);
        default:
            if (cli_creds_option(&creds, opt, optarg))
                break;
            return usage_error("unknown option ", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument ", argv[optind]);
    if (!file || !file[0])
        return usage_error("missing -o FILE", "");
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return usage_error("--endpoint must be an http:// or https:// URL: ", endpoint);
    client *c = cli_client_new("backup", endpoint, &creds);
    if (!c)
        return EXIT_USAGE;

    kv_snapshot snap;
    bool fetched = fetch_snapshot(c, &snap);
    client_free(c);
    if (!fetched)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    errdetail why;
    size_t tlen = strlen(file) + sizeof(".tmp");
    char *tmp = malloc(tlen);
    if (!tmp) {
        fprintf(stderr, "backup: out of memory\n");
        goto out_snap;
    }
    snprintf(tmp, tlen, "%s.tmp", file);
    if (write_tmp(tmp, &snap, &why) < 0 || verify_tmp(tmp, &snap, &why) < 0)
        goto out_unlink;
    if (rename(tmp, file) != 0) {
        errdetail_set(&why, CITRUS_EIO, "cannot rename %s to %s: %s", tmp, file, strerror(errno));
        goto out_unlink;
    }
    if (sync_dir_of(file, &why) < 0) {
        fprintf(stderr, "backup: %s\n", why.message);
        goto out_tmp;
    }
    printf("backup: %zu keys at revision %" PRId64 " -> %s\n", snap.count, snap.revision, file);
    rc = 0;
    goto out_tmp;

out_unlink:
    fprintf(stderr, "backup: %s\n", why.message);
    unlink(tmp);
out_tmp:
    free(tmp);
out_snap:
    kv_snapshot_free(&snap);
    return rc;
}

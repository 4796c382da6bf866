/* Unit tests for node/config.c: defaults, file, environment, flags, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/principal.h"
#include "citrus/errors.h"
#include "node/config.h"

static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/citrus-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void defaults(void **state)
{
    citrus_config c;
    config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:8081");
    assert_string_equal(c.data_dir, "./citrus-data");
    assert_int_equal(c.max_body_bytes, 1024 * 1024);
    assert_int_equal(c.max_value_bytes, 1024 * 1024);
}

/* Every statement the router runs is bounded (issue 13, item 7): 30 s
 * unless the request names its own timeout, which may not pass 10 min;
 * no limit at all (0) is refused, and so is a default over the maximum. */
static void router_statement_bounds(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_int_equal(c.router_query_timeout_ms, 30000);
    assert_int_equal(c.router_max_query_timeout_ms, 600000);
    assert_int_equal(config_validate(&c, &err), 0);
    assert_int_equal(config_set_flag(&c, "router-query-timeout", "0", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "router.query_timeout_ms"));
    assert_int_equal(config_set_flag(&c, "router-max-query-timeout", "0", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "router-max-query-timeout", "1000", &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "router.query_timeout_ms: 30000 is more than "
                                        "router.max_query_timeout_ms (1000)"));
    assert_int_equal(config_set_flag(&c, "router-query-timeout", "1000", &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
}

/* router.int64 (issue 14, item 5): number by default, string allowed,
 * anything else refused naming the key. */
static void router_int64(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_string_equal(c.router_int64, "number");
    assert_int_equal(config_set_flag(&c, "router-int64", "string", &err), 0);
    assert_string_equal(c.router_int64, "string");
    char *env[] = {"CITRUS_ROUTER_INT64=bigint", NULL};
    assert_int_equal(config_load_env(&c, env, &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "router.int64"));
    assert_int_equal(config_set_flag(&c, "router-int64", "String", &err), CITRUS_EINVAL);
    assert_string_equal(c.router_int64, "string"); /* untouched */
}

/* The background shard probes' interval: default 2000 ms, 100 at least. */
static void shards_probe_interval(void **state)
{
    (void)state;
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_int_equal(c.shard_probe_interval_ms, 2000);
    assert_int_equal(config_set_flag(&c, "shards-probe-interval", "50", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "shards.probe_interval_ms"));
    assert_int_equal(config_set_flag(&c, "shards-probe-interval", "500", &err), 0);
    assert_int_equal(c.shard_probe_interval_ms, 500);
}

/* Strict HTTP (issue 13): the header deadline, the per-address limit and
 * the Origins served, with their defaults and checks. */
static void strict_http(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_int_equal(c.header_timeout_ms, 10000);
    assert_int_equal(c.request_deadline_ms, 4000); /* below seed 003's 5 s client timeout */
    assert_int_equal(config_set_flag(&c, "request-deadline", "99", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "request-deadline", "600001", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "request-deadline", "1500", &err), 0);
    assert_int_equal(c.request_deadline_ms, 1500);
    assert_int_equal(c.max_conns_per_ip, 256);
    assert_string_equal(c.cors_origins, "");
    write_file("{\"server\":{\"header_timeout_ms\":1500,\"max_conns_per_ip\":8,"
               "\"cors\":{\"allowed_origins\":[\"https://app.example\","
               "\"http://localhost:3000\"]}}}");
    assert_int_equal(config_load_file(&c, path, &err), 0);
    unlink(path);
    assert_int_equal(c.header_timeout_ms, 1500);
    assert_int_equal(c.max_conns_per_ip, 8);
    assert_string_equal(c.cors_origins, "https://app.example,http://localhost:3000");
    assert_int_equal(config_validate(&c, &err), 0);
    assert_int_equal(config_set_flag(&c, "header-timeout", "10", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "max-conns-per-ip", "0", &err), CITRUS_EINVAL);
    static const char *const bad[] = {"*",       "app.example", "https://app.example/path",
                                      "ftp://x", "https://",    "https://a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_set_flag(&c, "cors-allowed-origins", bad[i], &err), 0);
        assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
        assert_non_null(strstr(err.message, "server.cors.allowed_origins"));
    }
}

static void file_then_env_then_flag(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    write_file("{\"server\":{\"listen\":\"127.0.0.1:9000\",\"threads\":2},"
               "\"catalog\":{\"data_dir\":\"/tmp/x\"},"
               "\"workers\":{\"notification_filter\":{\"types\":[\"a\"]}}}");
    assert_int_equal(config_load_file(&c, path, &err), 0);
    unlink(path);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_int_equal(c.threads, 2);
    char *env[] = {"CITRUS_SERVER_LISTEN=127.0.0.1:9001", "OTHER=1", NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_string_equal(c.listen, "127.0.0.1:9001");
    assert_int_equal(config_set_flag(&c, "listen", "127.0.0.1:9002", &err), 0);
    assert_string_equal(c.listen, "127.0.0.1:9002");
    assert_string_equal(c.data_dir, "/tmp/x");

    /* config_load_text: not NUL-terminated, applied the same way. */
    static const char text[] = "{\"server\":{\"threads\":7}}trailing";
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, strlen(text) - strlen("trailing"), &err), 0);
    assert_int_equal(c.threads, 7);
}

static void bad_fields_are_named(void **state)
{
    const struct {
        const char *json;
        const char *expect;
    } cases[] = {
        {"{\"server\":{\"threads\":\"two\"}}", "server.threads"},
        {"{\"server\":{\"threads\":0}}", "server.threads"},
        {"{\"server\":{\"listn\":\"x\"}}", "server.listn: unknown field"},
        {"{\"nope\":{}}", "nope: unknown section"},
        {"{\"catalog\":[]}", "catalog: must be an object"},
        {"{\"catalog\":{\"backend\":\"zookeeper\"}}", "catalog.backend"},
        {"{\"log\":{\"level\":\"loud\"}}", "log.level"},
        {"[1,2", "line"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        citrus_config c;
        errdetail err = {0};
        config_defaults(&c);
        write_file(cases[i].json);
        assert_int_equal(config_load_file(&c, path, &err), CITRUS_EINVAL);
        assert_int_equal(err.code, CITRUS_EINVAL);
        unlink(path);
        if (!strstr(err.message, cases[i].expect))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err.message, cases[i].expect);
        /* The in-memory loader (used by tests/fuzz) reports the same. */
        errdetail_clear(&err);
        assert_int_equal(config_load_text(&c, cases[i].json, strlen(cases[i].json), &err),
                         CITRUS_EINVAL);
        assert_int_equal(err.code, CITRUS_EINVAL);
        if (!strstr(err.message, cases[i].expect))
            fail_msg("case %zu (text): '%s' does not mention '%s'", i, err.message,
                     cases[i].expect);
    }
}

static void bad_env_and_flags(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    char *env[] = {"CITRUS_CATALOG_MAX_VALUE_BYTES=lots", NULL};
    assert_int_equal(config_load_env(&c, env, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "catalog.max_value_bytes"));
    assert_non_null(strstr(err.message, "CITRUS_CATALOG_MAX_VALUE_BYTES"));
    assert_int_equal(config_set_flag(&c, "frobnicate", "1", &err), CITRUS_ENOTFOUND);
    assert_int_equal(err.code, CITRUS_ENOTFOUND);
    assert_int_equal(config_set_flag(&c, "threads", "-1", &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
}

static void cluster_nodes_and_etcd(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    write_file("{\"cluster\":{\"node_id\":\"n2\",\"nodes\":["
               "{\"id\":\"n1\",\"address\":\"127.0.0.1\",\"api_port\":8081},"
               "{\"id\":\"n2\",\"address\":\"127.0.0.2\",\"api_port\":8082}]},"
               "\"catalog\":{\"backend\":\"etcd\",\"max_staleness_ms\":2000,"
               "\"etcd\":{\"endpoints\":[\"http://127.0.0.1:2379\",\"http://127.0.0.1:22379\"],"
               "\"request_timeout_ms\":3000}}}");
    assert_int_equal(config_load_file(&c, path, &err), 0);
    unlink(path);
    assert_int_equal(c.nnodes, 2);
    assert_string_equal(c.nodes[1].address, "127.0.0.2");
    assert_int_equal(c.nodes[1].api_port, 8082);
    assert_string_equal(c.backend, "etcd");
    assert_string_equal(c.etcd_endpoints, "http://127.0.0.1:2379,http://127.0.0.1:22379");
    assert_int_equal(c.etcd_request_timeout_ms, 3000);
    assert_int_equal(c.max_staleness_ms, 2000);
    assert_int_equal(config_validate(&c, &err), 0);
    assert_string_equal(config_self(&c)->id, "n2");
    char listen[96];
    config_listen(&c, listen, sizeof(listen));
    assert_string_equal(listen, "127.0.0.2:8082"); /* from this node's entry */
    assert_int_equal(config_set_flag(&c, "listen", "127.0.0.1:9999", &err), 0);
    config_listen(&c, listen, sizeof(listen));
    assert_string_equal(listen, "127.0.0.1:9999"); /* an explicit listen wins */
    char *env[] = {"CITRUS_CATALOG_ETCD_ENDPOINTS=http://a:1,http://b:2", NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_string_equal(c.etcd_endpoints, "http://a:1,http://b:2");
    assert_int_equal(config_set_flag(&c, "node-id", "n9", &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "cluster.node_id"));
}

static void cluster_bad_inputs(void **state)
{
    const struct {
        const char *json;
        const char *expect;
    } cases[] = {
        {"{\"cluster\":{\"nodes\":{}}}", "cluster.nodes"},
        {"{\"cluster\":{\"nodes\":[{\"id\":\"a\",\"address\":\"x\"}]}}", "cluster.nodes[0]"},
        {"{\"cluster\":{\"nodes\":[{\"id\":\"a\",\"address\":\"x\",\"api_port\":0}]}}",
         "cluster.nodes[0]"},
        {"{\"cluster\":{\"nodes\":[{\"id\":\"a\",\"address\":\"x\",\"api_port\":1},"
         "{\"id\":\"a\",\"address\":\"y\",\"api_port\":2}]}}",
         "duplicate id"},
        {"{\"catalog\":{\"etcd\":{\"endpoints\":\"http://x\"}}}", "catalog.etcd.endpoints"},
        {"{\"catalog\":{\"etcd\":{\"endpoints\":[\"\"]}}}", "catalog.etcd.endpoints"},
        {"{\"catalog\":{\"etcd\":{\"endpionts\":[]}}}", "catalog.etcd.endpionts: unknown"},
        {"{\"catalog\":{\"etcd\":{\"request_timeout_ms\":1}}}", "catalog.etcd.request_timeout_ms"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        citrus_config c;
        errdetail err = {0};
        config_defaults(&c);
        write_file(cases[i].json);
        assert_int_equal(config_load_file(&c, path, &err), CITRUS_EINVAL);
        assert_int_equal(err.code, CITRUS_EINVAL);
        unlink(path);
        if (!strstr(err.message, cases[i].expect))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err.message, cases[i].expect);
    }
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_int_equal(config_set_flag(&c, "catalog-backend", "etcd", &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "catalog.etcd.endpoints"));
    assert_int_equal(config_set_flag(&c, "etcd-endpoints", "http://a,,http://b", &err),
                     CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "nodes", "not json", &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
}

/* TLS files by section, auth.mtls.subjects (a typed array), and what only
 * config_validate sees (files that go together). */
static void tls_and_mtls_subjects(void **state)
{
    citrus_config c;
    errdetail err = {0};
    config_defaults(&c);
    const char *doc =
        "{\"server\":{\"tls\":{\"cert_file\":\"/c.pem\",\"key_file\":\"/k.pem\","
        "\"client_ca_file\":\"/ca.pem\"}},"
        "\"router\":{\"tls\":{\"cert_file\":\"/rc.pem\",\"key_file\":\"/rk.pem\"}},"
        "\"catalog\":{\"etcd\":{\"tls\":{\"ca_file\":\"/eca.pem\"}}},"
        "\"auth\":{\"mtls\":{\"subjects\":[{\"subject\":\"svc.example\",\"user\":\"svc\","
        "\"roles\":[\"reader\",\"sm-operator\"]}]}}}";
    assert_int_equal(config_load_text(&c, doc, strlen(doc), &err), 0);
    assert_string_equal(c.tls_client_ca_file, "/ca.pem");
    assert_string_equal(c.router_tls_key_file, "/rk.pem");
    assert_string_equal(c.etcd_ca_file, "/eca.pem");
    assert_int_equal(c.nmtls_subjects, 1);
    assert_string_equal(c.mtls_subjects[0].subject, "svc.example");
    assert_string_equal(c.mtls_subjects[0].user, "svc");
    assert_int_equal(c.mtls_subjects[0].roles, AUTH_READER | AUTH_OPERATOR);
    assert_int_equal(config_validate(&c, &err), 0);
    char *env[] = {(char *)"CITRUS_AUTH_MTLS_SUBJECTS=[]", NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_int_equal(c.nmtls_subjects, 0);

    const char *bad[][2] = {
        {"[{\"subject\":\"a\",\"user\":\"a\",\"roles\":[\"tenant\"]}]", "roles[0]"},
        {"[{\"subject\":\"a\",\"user\":\"a\",\"roles\":[1]}]", "roles[0]"},
        {"[{\"subject\":\"a\",\"user\":\"a\"}]", "subjects[0]"},
        {"[{\"subject\":\"\",\"user\":\"a\",\"roles\":[]}]", "subjects[0]"},
        {"[{\"subject\":\"a\",\"user\":\"a\",\"roles\":[],\"x\":1}]", "subjects[0]"},
        {"[{\"subject\":\"a\",\"user\":\"a\",\"roles\":[]},"
         "{\"subject\":\"a\",\"user\":\"b\",\"roles\":[]}]",
         "duplicate subject"},
        {"{}", "auth.mtls.subjects"},
        {"not json", "auth.mtls.subjects"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        assert_int_equal(config_set_flag(&c, "mtls-subjects", bad[i][0], &err), CITRUS_EINVAL);
        if (!strstr(err.message, bad[i][1]))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err.message, bad[i][1]);
    }
    /* at most AUTHN_MAX_SUBJECTS */
    char many[AUTHN_MAX_SUBJECTS * 64 + 64] = "[";
    for (int i = 0; i <= AUTHN_MAX_SUBJECTS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many),
                 "%s{\"subject\":\"s%d\",\"user\":\"u\",\"roles\":[]}", i ? "," : "", i);
    strcat(many, "]");
    assert_int_equal(config_set_flag(&c, "mtls-subjects", many, &err), CITRUS_EINVAL);

    const char *pairs[][3] = {
        {"tls-key-file", "/k", "server.tls.cert_file"},
        {"tls-client-ca-file", "/ca", "server.tls.client_ca_file"},
        {"router-tls-cert-file", "/c", "router.tls.key_file"},
        {"etcd-key-file", "/k", "catalog.etcd.tls.cert_file"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        config_defaults(&c);
        assert_int_equal(config_set_flag(&c, pairs[i][0], pairs[i][1], &err), 0);
        assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
        if (!strstr(err.message, pairs[i][2]))
            fail_msg("pair %zu: '%s' does not mention '%s'", i, err.message, pairs[i][2]);
    }
}

static void dsn_rules_and_exec_env(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    const char *text = "{\"shards\": {\"tls_dir\": \"/etc/citrus/tls\", "
                       "\"socket_dirs\": [\"/var/run/postgresql\"], "
                       "\"allowed_hosts\": [\"10.0.0.0/8\", \"db.example.com\"]}, "
                       "\"provisioner\": {\"exec\": {\"env\": {\"A\": \"1\", "
                       "\"B_2\": \"x=y\"}}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
    assert_string_equal(c.shards_tls_dir, "/etc/citrus/tls");
    assert_string_equal(c.shards_socket_dirs, "/var/run/postgresql");
    assert_string_equal(c.shards_allowed_hosts, "10.0.0.0/8,db.example.com");
    assert_string_equal(c.prov_exec_env, "A=1,B_2=x=y");
    text = "{\"provisioner\": {\"exec\": {\"env\": [\"KEEP\", \"C=3\"]}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), 0);
    assert_string_equal(c.prov_exec_env, "KEEP,C=3");
    static const char *const bad[][3] = {
        {"shards-allowed-hosts", "10.0.0.0/33", "shards.allowed_hosts"},
        {"shards-allowed-hosts", "a b", "shards.allowed_hosts"},
        {"shards-socket-dirs", "relative/dir", "shards.socket_dirs"},
        {"shards-tls-dir", "tls", "shards.tls_dir"},
        {"provisioner-exec-env", "1BAD", "provisioner.exec.env"},
        {"provisioner-exec-env", "A-B=1", "provisioner.exec.env"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        assert_int_equal(config_set_flag(&c, bad[i][0], bad[i][1], &err), 0);
        assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
        if (!strstr(err.message, bad[i][2]))
            fail_msg("%s=%s: '%s' does not name %s", bad[i][0], bad[i][1], err.message, bad[i][2]);
    }
    config_defaults(&c);
    text = "{\"provisioner\": {\"exec\": {\"env\": {\"A\": 1}}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), CITRUS_EINVAL);
}

/* The bus section (issue 15, item 2): seed 000's five topics under the
 * citrus. prefix by default, a prefix that moves every topic not named,
 * a named topic used as given, and the size limit's bounds. */
static void bus_topics_and_defaults(void **state)
{
    citrus_config c;
    errdetail err;
    char buf[256];
    config_defaults(&c);
    assert_string_equal(c.bus_backend, "embedded");
    assert_string_equal(c.bus_topic_prefix, "citrus.");
    assert_int_equal(c.bus_max_event_bytes, 1048576);
    static const char *const want[CONFIG_NTOPICS] = {
        "citrus.enrollment.events", "citrus.shard.ingest.commands", "citrus.sm.commands",
        "citrus.sm.events",         "citrus.platform.events",       "citrus.registrations"};
    for (size_t t = 0; t < CONFIG_NTOPICS; t++)
        assert_string_equal(config_bus_topic(&c, (config_topic)t, buf, sizeof(buf)), want[t]);
    assert_string_equal(c.bus_groups[CONFIG_GROUP_ENROLLMENT_INGEST], "citrus-enrollment-ingest");
    assert_string_equal(c.bus_groups[CONFIG_GROUP_SHARD_MANAGEMENT], "citrus-shard-management");
    assert_string_equal(c.bus_groups[CONFIG_GROUP_EVENT_NOTIFICATION], "citrus-event-notification");
    assert_string_equal(c.bus_groups[CONFIG_GROUP_REGISTRATION], "citrus-registration");
    assert_int_equal(c.regq_retention_days, 30);
    assert_int_equal(config_validate(&c, &err), 0);

    const char *text = "{\"bus\": {\"topic_prefix\": \"qie.\", \"max_event_bytes\": 2048, "
                       "\"topics\": {\"sm_events\": \"ops.lifecycle\"}, "
                       "\"groups\": {\"shard_management\": \"sm-workers\"}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
    assert_string_equal(config_bus_topic(&c, CONFIG_TOPIC_ENROLLMENT_EVENTS, buf, sizeof(buf)),
                        "qie.enrollment.events");
    assert_string_equal(config_bus_topic(&c, CONFIG_TOPIC_SM_EVENTS, buf, sizeof(buf)),
                        "ops.lifecycle");
    assert_int_equal(c.bus_max_event_bytes, 2048);
    assert_string_equal(c.bus_groups[CONFIG_GROUP_SHARD_MANAGEMENT], "sm-workers");

    char *env[] = {"CITRUS_BUS_TOPICS_PLATFORM_EVENTS=platform", "CITRUS_BUS_BACKEND=kafka",
                   "CITRUS_BUS_KAFKA_BOOTSTRAP_SERVERS=k1:9092,[::1]:9093", NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_string_equal(config_bus_topic(&c, CONFIG_TOPIC_PLATFORM_EVENTS, buf, sizeof(buf)),
                        "platform");
    assert_string_equal(c.bus_backend, "kafka");
    assert_int_equal(config_validate(&c, &err), 0);
    assert_int_equal(config_set_flag(&c, "bus-topic-sm-commands", "cmds", &err), 0);
    assert_string_equal(config_bus_topic(&c, CONFIG_TOPIC_SM_COMMANDS, buf, sizeof(buf)), "cmds");
    /* the registration queue's topic, group and retention */
    assert_int_equal(config_set_flag(&c, "bus-topic-registrations", "regs", &err), 0);
    assert_string_equal(config_bus_topic(&c, CONFIG_TOPIC_REGISTRATIONS, buf, sizeof(buf)), "regs");
    assert_int_equal(config_set_flag(&c, "bus-group-registration", "reg-workers", &err), 0);
    assert_string_equal(c.bus_groups[CONFIG_GROUP_REGISTRATION], "reg-workers");
    assert_int_equal(config_set_flag(&c, "registration-retention-days", "7", &err), 0);
    assert_int_equal(c.regq_retention_days, 7);
    assert_int_equal(config_set_flag(&c, "registration-retention-days", "0", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "workers.registration_retention_days"));

    /* bounds and choices, named */
    assert_int_equal(config_set_flag(&c, "bus-max-event-bytes", "1023", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.max_event_bytes"));
    assert_int_equal(config_set_flag(&c, "bus-max-event-bytes", "67108865", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "bus-backend", "redis", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.backend"));
    text = "{\"bus\": {\"topicz\": {}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.topicz: unknown field"));
    text = "{\"bus\": {\"topics\": {\"sm_event\": \"x\"}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.topics.sm_event: unknown field"));
}

/* Topic names follow Kafka's rule, leave room for "<topic>.dlq", are not
 * dead-letter names themselves and are not two alike; group ids follow
 * the same rule; kafka needs bootstrap servers of host:port. Each refusal
 * names the setting. */
static void bus_bad_names(void **state)
{
    citrus_config c;
    errdetail err;
    char long_name[251];
    memset(long_name, 'a', 250);
    long_name[250] = '\0';
    char almost[247];
    memset(almost, 'b', 246);
    almost[246] = '\0';
    const struct {
        const char *flag, *value, *named;
    } bad[] = {
        {"bus-topic-sm-events", "a b", "bus.topics.sm_events"},
        {"bus-topic-sm-events", "caf\xc3\xa9", "bus.topics.sm_events"},
        {"bus-topic-sm-events", ".", "bus.topics.sm_events"},
        {"bus-topic-sm-events", "..", "bus.topics.sm_events"},
        {"bus-topic-sm-events", long_name, "bus.topics.sm_events"},
        {"bus-topic-sm-events", almost, "room for its dead-letter topic"},
        {"bus-topic-sm-events", "events.dlq", "ends in .dlq"},
        {"bus-topic-sm-events", "citrus.sm.commands", "bus.topics.sm_events"},
        {"bus-topic-sm-events", "citrus_sm.commands", "is the name of bus.topics.sm_commands"},
        {"bus-topic-prefix", "bad/prefix.", "bus.topic_prefix"},
        {"bus-group-shard-management", "sm workers", "bus.groups.shard_management"},
        {"kafka-bootstrap-servers", "k1", "bus.kafka.bootstrap_servers"},
        {"kafka-bootstrap-servers", "k1:0", "bus.kafka.bootstrap_servers"},
        {"kafka-bootstrap-servers", "k1:65536", "bus.kafka.bootstrap_servers"},
        {"kafka-bootstrap-servers", ":9092", "bus.kafka.bootstrap_servers"},
        {"kafka-bootstrap-servers", "k 1:9092", "bus.kafka.bootstrap_servers"},
        {"bus-backend", "kafka", "bus.kafka.bootstrap_servers: required"},
        {"bus-backoff-base-ms", "400000", "bus.backoff_cap_ms: 300000 is below"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        assert_int_equal(config_set_flag(&c, bad[i].flag, bad[i].value, &err), 0);
        assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
        if (!strstr(err.message, bad[i].named))
            fail_msg("%s=%.40s: '%s' does not say '%s'", bad[i].flag, bad[i].value, err.message,
                     bad[i].named);
    }
    /* out of range at the flag already */
    config_defaults(&c);
    assert_int_equal(config_set_flag(&c, "bus-partitions", "65", &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.partitions"));
    assert_int_equal(config_set_flag(&c, "bus-max-attempts", "0", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "bus-retention-bytes", "1000", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "bus-visibility-timeout-ms", "99", &err), CITRUS_EINVAL);
    assert_int_equal(c.bus_partitions, 4);
    assert_int_equal(c.bus_max_attempts, 5);
    assert_int_equal(c.bus_visibility_ms, 30000);
    /* the longest that leaves room for ".dlq" is fine */
    config_defaults(&c);
    almost[245] = '\0';
    assert_int_equal(config_set_flag(&c, "bus-topic-sm-events", almost, &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
}

/* The workers section: off by default (citrus dev turns it on), the
 * notification filter's lists from a file, the environment and flags;
 * `--workers` is a boolean flag (given alone it means true). */
static void workers_section(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_string_equal(c.workers_enabled, "false");
    assert_int_equal(c.workers_threads, 1);
    assert_int_equal(c.workers_batch, 100);
    assert_int_equal(c.notify_retention_days, 30);
    assert_string_equal(c.notify_sources, "");
    const char *text = "{\"workers\": {\"enabled\": true, \"batch\": 10, "
                       "\"notification_filter\": {\"sources\": [\"/a/*\", \"urn:b\"], "
                       "\"severities\": [\"error\"]}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), 0);
    assert_string_equal(c.workers_enabled, "true");
    assert_int_equal(c.workers_batch, 10);
    assert_string_equal(c.notify_sources, "/a/*,urn:b");
    assert_string_equal(c.notify_severities, "error");
    char *env[] = {"CITRUS_WORKERS_NOTIFICATION_FILTER_TYPES=x.*,y", "CITRUS_WORKERS_ENABLED=false",
                   NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_string_equal(c.notify_types, "x.*,y");
    assert_string_equal(c.workers_enabled, "false");
    assert_int_equal(config_set_flag(&c, "workers", "true", &err), 0);
    assert_string_equal(c.workers_enabled, "true");
    assert_true(config_flag_is_bool("workers"));
    assert_true(config_flag_is_bool("audit-fail-open"));
    assert_false(config_flag_is_bool("worker-batch"));
    assert_false(config_flag_is_bool("bus-backend")); /* an enum, not a boolean */
    assert_false(config_flag_is_bool("no-such-flag"));
    assert_int_equal(config_set_flag(&c, "workers", "yes", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "worker-batch", "1001", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "worker-threads", "0", &err), CITRUS_EINVAL);
    assert_int_equal(config_set_flag(&c, "notification-filter-types", "a,,b", &err), CITRUS_EINVAL);
    /* the section was reserved at the top level; it lives under workers now */
    text = "{\"notification_filter\": {\"types\": []}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), CITRUS_EINVAL);
    text = "{\"workers\": {\"notification_filter\": {\"levels\": []}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "levels"));
}

/* bus.kafka.*: client id, security, bounds; SASL needs its user and
 * password, and the password never shows in a refusal. */
static void bus_kafka_settings(void **state)
{
    citrus_config c;
    errdetail err;
    config_defaults(&c);
    assert_string_equal(c.bus_kafka_client_id, "citrus");
    assert_string_equal(c.bus_kafka_security_protocol, "plaintext");
    assert_int_equal(c.bus_kafka_publish_timeout_ms, 30000);
    assert_int_equal(c.bus_kafka_request_timeout_ms, 10000);
    assert_int_equal(c.bus_kafka_replication_factor, 0);
    assert_int_equal(c.bus_kafka_session_timeout_ms, 10000);
    const char *text = "{\"bus\": {\"backend\": \"kafka\", \"kafka\": {"
                       "\"bootstrap_servers\": [\"k1:9093\"], \"client_id\": \"node1\", "
                       "\"security_protocol\": \"sasl_ssl\", \"sasl_mechanism\": "
                       "\"SCRAM-SHA-512\", \"sasl_username\": \"citrus\", "
                       "\"ssl_ca_file\": \"/etc/kafka/ca.pem\", \"publish_timeout_ms\": 5000, "
                       "\"request_timeout_ms\": 2000, \"replication_factor\": 3, "
                       "\"session_timeout_ms\": 6000}}}";
    assert_int_equal(config_load_text(&c, text, strlen(text), &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL); /* no password yet */
    assert_non_null(strstr(err.message, "bus.kafka.sasl_password"));
    char *env[] = {"CITRUS_BUS_KAFKA_SASL_PASSWORD=s3cret-Pa55", NULL};
    assert_int_equal(config_load_env(&c, env, &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
    assert_string_equal(c.bus_kafka_client_id, "node1");
    assert_string_equal(c.bus_kafka_sasl_mechanism, "SCRAM-SHA-512");
    assert_string_equal(c.bus_kafka_sasl_password, "s3cret-Pa55");
    assert_int_equal(c.bus_kafka_publish_timeout_ms, 5000);
    assert_int_equal(c.bus_kafka_replication_factor, 3);
    assert_int_equal(c.bus_kafka_session_timeout_ms, 6000);
    assert_int_equal(config_set_flag(&c, "kafka-session-timeout", "300000", &err), 0);
    assert_int_equal(c.bus_kafka_session_timeout_ms, 300000);

    /* refusals name the setting */
    const struct {
        const char *flag, *value, *named;
    } bad[] = {
        {"kafka-security-protocol", "tls", "bus.kafka.security_protocol"},
        {"kafka-sasl-mechanism", "GSSAPI", "bus.kafka.sasl_mechanism"},
        {"kafka-publish-timeout", "99", "bus.kafka.publish_timeout_ms"},
        {"kafka-request-timeout", "600001", "bus.kafka.request_timeout_ms"},
        {"kafka-replication-factor", "-1", "bus.kafka.replication_factor"},
        {"kafka-session-timeout", "5999", "bus.kafka.session_timeout_ms"},
        {"kafka-session-timeout", "300001", "bus.kafka.session_timeout_ms"},
        {"kafka-session-timeout", "45s", "bus.kafka.session_timeout_ms"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_set_flag(&c, bad[i].flag, bad[i].value, &err), CITRUS_EINVAL);
        assert_non_null(strstr(err.message, bad[i].named));
    }
    char longpw[300];
    memset(longpw, 'p', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(config_set_flag(&c, "kafka-sasl-password", longpw, &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.kafka.sasl_password"));
    assert_null(strstr(err.message, "ppp")); /* not echoed */

    /* SASL settings without a SASL protocol, a CA file without TLS */
    config_defaults(&c);
    assert_int_equal(config_set_flag(&c, "kafka-sasl-username", "u", &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.kafka.sasl_username"));
    config_defaults(&c);
    assert_int_equal(config_set_flag(&c, "kafka-ssl-ca-file", "/ca.pem", &err), 0);
    assert_int_equal(config_validate(&c, &err), CITRUS_EINVAL);
    assert_non_null(strstr(err.message, "bus.kafka.ssl_ca_file"));
    assert_int_equal(config_set_flag(&c, "kafka-security-protocol", "ssl", &err), 0);
    assert_int_equal(config_validate(&c, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(router_statement_bounds),
        cmocka_unit_test(router_int64),
        cmocka_unit_test(shards_probe_interval),
        cmocka_unit_test(strict_http),
        cmocka_unit_test(file_then_env_then_flag),
        cmocka_unit_test(bad_fields_are_named),
        cmocka_unit_test(bad_env_and_flags),
        cmocka_unit_test(cluster_nodes_and_etcd),
        cmocka_unit_test(cluster_bad_inputs),
        cmocka_unit_test(tls_and_mtls_subjects),
        cmocka_unit_test(dsn_rules_and_exec_env),
        cmocka_unit_test(bus_topics_and_defaults),
        cmocka_unit_test(bus_bad_names),
        cmocka_unit_test(workers_section),
        cmocka_unit_test(bus_kafka_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

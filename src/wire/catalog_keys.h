/* wire/catalog_keys.h — where Citrus keeps its state in the catalog: the
 * key layout that the registry writes and libcitrus's copy reads.
 *
 * Keys under citrus/ are Citrus's own:
 *   citrus/shards/<id>              the shard record (shard_json), with history
 *   citrus/ring/meta                {"hash","vnodes"}; every change of token
 *                                   ownership rewrites it in the same txn, so
 *                                   its mod_revision is the ring version
 *   citrus/ring/tokens/<id>         {"tokens":["<u64>",...]}: the tokens the
 *                                   shard owns, in vnode order
 *   citrus/tenants/<key>            a pin: {"shard_id","token","hash",
 *                                   "pinned_at",...}; takes precedence over
 *                                   the ring
 *   citrus/tenant-index/<id>/<key>  "" for every tenant pinned to shard id
 *   citrus/provision/<id>           {"template","params"} of a shard being
 *                                   provisioned
 *   citrus/shard-db/<sha256>        {"shard_id","database"}: the database a
 *                                   shard's DSN names (dsn_identity, one key
 *                                   per host), created with the shard record
 *                                   only if absent, deleted with it: one
 *                                   database, one shard
 *   citrus/auth/keys/<id>           an API key: its name, roles, scopes,
 *                                   grants and expiry, and only the SHA-256 of
 *                                   its secret
 *   citrus/auth/bootstrap           written once, with the first key that
 *                                   `citrus auth bootstrap` made
 *   citrus/dlq-replays/<topic>/<pppp>-<ooo...o>
 *                                   the replay of dead letter <p>-<o> of
 *                                   <topic>.dlq (partition 4 digits, offset
 *                                   19, so keys sort as the dead letters):
 *                                   {"state":"replaying"|"replayed", where,
 *                                   when, by whom} (api/dlq.c) */
#ifndef CITRUS_WIRE_CATALOG_KEYS_H
#define CITRUS_WIRE_CATALOG_KEYS_H

#define REG_SHARDS "citrus/shards/"
#define REG_RING_META "citrus/ring/meta"
#define REG_RING_TOKENS "citrus/ring/tokens/"
#define REG_TENANTS "citrus/tenants/"
#define REG_TENANT_INDEX "citrus/tenant-index/"
#define REG_PROVISION "citrus/provision/"
#define REG_SHARD_DB "citrus/shard-db/"
#define AUTH_KEYS_PREFIX "citrus/auth/keys/"
#define AUTH_BOOTSTRAP_KEY "citrus/auth/bootstrap"
#define DLQ_REPLAYS "citrus/dlq-replays/"

#endif

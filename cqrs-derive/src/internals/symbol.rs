//! The attribute keys, listed once.

pub(crate) const CQRS: &str = "cqrs";
pub(crate) const DIESEL: &str = "diesel";

// container keys, both kinds
pub(crate) const CQRS_ID: &str = "cqrs_id";
pub(crate) const CRATE: &str = "crate";
pub(crate) const BACKENDS: &str = "backends";
/// The backends `backends(...)` takes.
pub(crate) const SQLITE: &str = "sqlite";
pub(crate) const POSTGRES: &str = "postgres";
// master container keys
pub(crate) const FIELDS: &str = "fields";
pub(crate) const PRODUCE: &str = "produce";
pub(crate) const SYNC_FILTER: &str = "sync_filter";
pub(crate) const TRACKED_FIELDS: &str = "tracked_fields";
pub(crate) const SERIALIZER: &str = "serializer";
pub(crate) const RELATE: &str = "relate";
pub(crate) const META: &str = "meta";
pub(crate) const CORRELATION_ID: &str = "correlation_id";
pub(crate) const DELETE_DATA: &str = "delete_data";
// replica container keys
pub(crate) const MAPPING: &str = "mapping";
pub(crate) const CUSTOM_SERIALIZATION: &str = "custom_serialization";
pub(crate) const CUSTOM_HOOKS: &str = "custom_hooks";
pub(crate) const ONLY_DIRECT_SYNCS: &str = "only_direct_syncs";
pub(crate) const SELECT_FOR_UPDATE: &str = "select_for_update";
// field keys
pub(crate) const RENAME: &str = "rename";
pub(crate) const SKIP: &str = "skip";
pub(crate) const DEFAULT: &str = "default";
// `#[handler(...)]` keys (and `default`, `crate` above)
pub(crate) const EXCHANGE: &str = "exchange";
pub(crate) const ROUTING_KEY: &str = "routing_key";
pub(crate) const INBOX: &str = "inbox";
pub(crate) const CHECK_EXPIRED_AFTER: &str = "check_expired_after";
// diesel keys we read
pub(crate) const TABLE_NAME: &str = "table_name";
pub(crate) const PRIMARY_KEY: &str = "primary_key";
pub(crate) const COLUMN_NAME: &str = "column_name";

pub(crate) const MASTER_KEYS: &[&str] = &[
    CQRS_ID,
    FIELDS,
    PRODUCE,
    SYNC_FILTER,
    TRACKED_FIELDS,
    SERIALIZER,
    RELATE,
    META,
    CORRELATION_ID,
    DELETE_DATA,
    BACKENDS,
    CRATE,
];

pub(crate) const REPLICA_KEYS: &[&str] = &[
    CQRS_ID,
    MAPPING,
    CUSTOM_SERIALIZATION,
    CUSTOM_HOOKS,
    ONLY_DIRECT_SYNCS,
    SELECT_FOR_UPDATE,
    META,
    BACKENDS,
    CRATE,
];

pub(crate) const HANDLER_KEYS: &[&str] = &[
    EXCHANGE,
    ROUTING_KEY,
    DEFAULT,
    INBOX,
    CHECK_EXPIRED_AFTER,
    CRATE,
];

pub(crate) const MASTER_FIELD_KEYS: &[&str] = &[RENAME, SKIP];
pub(crate) const REPLICA_FIELD_KEYS: &[&str] = &[DEFAULT, SKIP];

pub(crate) const REVISION_FIELD: &str = "cqrs_revision";
pub(crate) const UPDATED_FIELD: &str = "cqrs_updated";

/// `a`, `b`, `c` for error messages.
pub(crate) fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

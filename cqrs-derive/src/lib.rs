//! `#[derive(CqrsMaster)]` and `#[derive(CqrsReplica)]`. Use them through `cqrs-core`, which
//! re-exports them; the generated code only names `cqrs_core` and the model's own diesel
//! table.
//!
//! This crate parses, checks and emits; the logic lives in `cqrs-core`.

mod dummy;
mod emit;
mod fallback;
mod handler;
mod internals;
mod master;
mod replica;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

use internals::attr::Kind;

/// Makes a diesel struct a CQRS *master* model: its changes are sent to replicas.
///
/// The struct needs `#[diesel(table_name = ...)]` (and `#[diesel(primary_key(...))]` when the
/// key is not `id`), a field per column, `cqrs_revision: i32` and
/// `cqrs_updated: DateTime<Utc>` (or `NaiveDateTime`, taken as UTC). It implements
/// `cqrs_core::MasterModel` and, per enabled backend, the storage behind `cqrs_core::MasterStore<Conn>`, whose
/// write hooks (`cqrs_insert`, `cqrs_create`, `cqrs_save`, `cqrs_update`, `cqrs_delete`,
/// `cqrs_bulk_insert`, `cqrs_bulk_update`, `cqrs_sync`, ...), and registers the model.
///
/// Container attributes, `#[cqrs(...)]`:
/// * `cqrs_id = "book"`: the model's stream id (required).
/// * `fields(id, title, ...)`: the fields sent (default: all); must include the primary key.
/// * `produce = false`: keep the revision bookkeeping, send nothing.
/// * `sync_filter = path`: `fn(&Self) -> bool`; rows for which it is false send nothing.
/// * `tracked_fields(title, ...)`: send the old values of these fields as `previous_data`;
///   `tracked_fields = "__all__"`: of every field but the skipped ones.
/// * `serializer = path`: `fn(&Self) -> serde_json::Value` (or a `Map`, or a `Result` of
///   either) replacing the generated serialization; `cqrs_revision`/`cqrs_updated` are added.
/// * `relate = path`: `fn(&mut Conn, &[Self]) -> Result<R, E>` (`E` any error type), called
///   once for the rows a message is built for (one row for a write, a page for a bulk path),
///   in the write's transaction; the `serializer` then takes `(&Self, &R)`. django-cqrs's
///   `relate_cqrs_serialization`/`bulk_relate_cqrs_serialization`.
/// * `meta = path`: `fn(&Self, &MetaContext) -> impl Into<Value>`, the message `meta`.
/// * `correlation_id = path`: `fn(&Self, &CorrelationContext) -> Option<String>`.
/// * `delete_data = path`: `fn(&Self) -> Option<Value>`, sent as `custom` in DELETE stubs.
/// * `backends(sqlite, postgres)`: the backends to generate for (default: every enabled one).
/// * `crate = "path"`: where `cqrs_core` is, if renamed.
///
/// Field attributes: `#[cqrs(rename = "name")]` (the key in messages and filters),
/// `#[cqrs(skip)]` (never sent). `#[diesel(column_name = ...)]` is honoured.
#[proc_macro_derive(CqrsMaster, attributes(cqrs, diesel))]
pub fn derive_master(input: TokenStream) -> TokenStream {
    derive_master_inner(input.into()).into()
}

/// [`derive_master`] on `proc_macro2` tokens (for the unit and snapshot tests).
fn derive_master_inner(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    derive(Kind::Master, input, master::expand)
}

/// Makes a diesel struct a CQRS *replica* model: it is kept equal to a master's rows.
///
/// The struct needs `#[diesel(table_name = ...)]`, a field per column, `cqrs_revision: i32`
/// and `cqrs_updated` (`DateTime<Utc>` or `NaiveDateTime`). It implements
/// `cqrs_core::ReplicaModel`, `cqrs_core::ReplicaStore<Conn>` per enabled backend, the default
/// `cqrs_core::ReplicaHooks<Conn>`, and registers the model for consumers and tools.
///
/// Container attributes, `#[cqrs(...)]`:
/// * `cqrs_id = "book"`: the master's stream id (required).
/// * `mapping(master_field = replica_field, ...)`: keep only these master fields, renamed.
/// * `custom_serialization`: your `ReplicaHooks` build rows from the mapped data unchecked.
/// * `custom_hooks`: you implement `ReplicaHooks` (create/update/delete/retry policy).
/// * `only_direct_syncs`: ignore broadcast SYNC messages.
/// * `select_for_update`: lock the row before applying (PostgreSQL).
/// * `meta`: the hooks receive the message's `meta`.
/// * `backends(sqlite, postgres)`, `crate = "path"`: as for `CqrsMaster`.
///
/// Field attributes: `#[cqrs(default)]` (a missing key takes `Default::default()` on create),
/// `#[cqrs(skip)]` (a local column messages never touch). `#[diesel(column_name)]` is honoured.
#[proc_macro_derive(CqrsReplica, attributes(cqrs, diesel))]
pub fn derive_replica(input: TokenStream) -> TokenStream {
    derive_replica_inner(input.into()).into()
}

/// [`derive_replica`] on `proc_macro2` tokens (for the unit and snapshot tests).
fn derive_replica_inner(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    derive(Kind::Replica, input, replica::expand)
}

/// Parses, expands, and on failure emits the errors with the fallback marker.
fn derive(
    kind: Kind,
    input: proc_macro2::TokenStream,
    expand: fn(&syn::DeriveInput) -> syn::Result<proc_macro2::TokenStream>,
) -> proc_macro2::TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    expand(&input).unwrap_or_else(|error| fallback::with_errors(kind, &input, error))
}

/// Registers a function as an event, command or call handler, for the consumer of its
/// connection type to find through `inventory`.
///
/// ```ignore
/// #[cqrs_core::handler(exchange = "book", routing_key = "published")]
/// fn on_published(conn: &mut SqliteConnection, event: Event<BookPublished>) -> Result<(), HandlerError> { .. }
/// ```
///
/// Arguments: `exchange = "..."` with `routing_key = "..."` (omitted: every routing key of
/// the exchange without a handler of its own), or `default` (whatever no handler routes);
/// `inbox` (deduplicate by event id in the handler's transaction); `check_expired_after`
/// (a command or call that expired while the handler ran is rolled back and not answered);
/// `crate = "path"`. The function takes `&mut Conn` (or `&mut C` for its one generic
/// parameter `C`: registered once per backend) and one of `Event<P>`, `Command<A>`, `Call<D>`,
/// `CallResponse<D>`, `Incoming`, and returns `Result<R, E>` where `E: Into<HandlerError>`;
/// a call handler's `R` is its answer.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(attr.into(), item.clone().into())
        .unwrap_or_else(|e| {
            let mut tokens = proc_macro2::TokenStream::from(item);
            tokens.extend(e.to_compile_error());
            tokens
        })
        .into()
}

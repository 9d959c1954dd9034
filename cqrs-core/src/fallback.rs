//! Stand-in impls for a model whose derive failed (thiserror's fallback, made generic): the
//! derive reports its error and marks the struct [`InvalidMaster`] or [`InvalidReplica`], and
//! these blanket impls give it every trait a valid model has. So the user sees the derive's
//! one error, not a cascade of "trait not implemented" errors at every use of the model. The
//! crate does not compile anyway (the derive's error stays), so no body here ever runs.

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use serde_json::{Map, Value};

use crate::db::CqrsConnection;
use crate::error::{ApplyError, Result};
use crate::filter::{BoxedFilter, FilterError, Lookup};
use crate::master::{MasterModel, MasterTable};
use crate::replica::{ReplicaHooks, ReplicaModel, ReplicaTable};
use crate::rules::Version;
use crate::value::CqrsValue;

/// A struct whose `#[derive(CqrsMaster)]` failed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a master model for this connection",
    note = "derive `CqrsMaster` on it, with this backend in `backends(...)` and the backend's \
            feature of cqrs-core enabled"
)]
pub trait InvalidMaster: Sized + Send + 'static {
    /// The primary key's type, when the derive could tell it.
    type Pk: CqrsValue + Clone + fmt::Debug + Send + Sync + 'static;
    /// The diesel table, when the derive could tell it.
    type Table: 'static;
}

// The two markers have the same shape on purpose: one per derive, each with its own message.
/// A struct whose `#[derive(CqrsReplica)]` failed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a replica model for this connection",
    note = "derive `CqrsReplica` on it, with this backend in `backends(...)` and the backend's \
            feature of cqrs-core enabled"
)]
pub trait InvalidReplica: Sized + Send + 'static {
    /// The primary key's type, when the derive could tell it.
    type Pk: CqrsValue + Clone + fmt::Debug + Send + Sync + 'static;
}

/// A failed replica model that would have had the generated hooks.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no replica hooks for this connection",
    note = "a model with `custom_hooks` or `custom_serialization` must implement \
            `cqrs_core::ReplicaHooks<C>` itself"
)]
pub trait InvalidReplicaHooks: InvalidReplica {}

/// The one body of every stand-in.
macro_rules! never {
    () => {
        unreachable!("a model whose derive failed is never compiled into a program")
    };
}

#[allow(
    clippy::panic,
    reason = "never runs: the crate that uses these impls does not compile"
)]
impl<T: InvalidMaster> MasterModel for T {
    type Pk = T::Pk;
    const CQRS_ID: &'static str = "";
    const TYPE_NAME: &'static str = "";
    const PRODUCE: bool = false;
    const FIELDS: &'static [&'static str] = &[];
    const TRACKED_FIELDS: &'static [&'static str] = &[];

    fn cqrs_pk(&self) -> &Self::Pk {
        never!()
    }
    fn cqrs_version(&self) -> Version {
        never!()
    }
    fn cqrs_set_version(&mut self, _: Version) {
        never!()
    }
    fn cqrs_tracked(&self) -> Map<String, Value> {
        never!()
    }
}

#[allow(
    clippy::panic,
    reason = "never runs: the crate that uses these impls does not compile"
)]
impl<T: InvalidMaster, C: CqrsConnection> MasterTable<C> for T {
    type Table = T::Table;
    const WRITABLE: &'static [&'static str] = &[];

    fn db_update_fields(
        _: &mut C,
        _: &Self,
        _: &[&str],
        _: bool,
        _: Option<DateTime<Utc>>,
    ) -> QueryResult<Option<Self>> {
        never!()
    }

    fn db_insert(_: &mut C, _: &[Self]) -> QueryResult<Vec<Self>> {
        never!()
    }

    fn db_instance_data(_: &mut C, _: &[Self]) -> Result<Vec<Map<String, Value>>> {
        never!()
    }
    fn db_update(
        _: &mut C,
        _: &Self,
        _: DateTime<Utc>,
        _: Option<&crate::db::OutboxMessage>,
    ) -> QueryResult<Option<(Self, Option<i64>)>> {
        never!()
    }
    fn db_set_created(_: &mut C, _: &Self::Pk, _: Version) -> QueryResult<Option<Self>> {
        never!()
    }
    fn db_get(_: &mut C, _: &Self::Pk, _: bool) -> QueryResult<Option<Self>> {
        never!()
    }
    fn db_delete(_: &mut C, _: &Self::Pk) -> QueryResult<Option<Self>> {
        never!()
    }
    fn db_page(
        _: &mut C,
        _: Vec<BoxedFilter<Self::Table, C::Backend>>,
        _: Option<&Self::Pk>,
        _: i64,
    ) -> QueryResult<Vec<Self>> {
        never!()
    }
    fn db_count(_: &mut C, _: Vec<BoxedFilter<Self::Table, C::Backend>>) -> QueryResult<i64> {
        never!()
    }
    fn db_existing(_: &mut C, _: &[Self::Pk]) -> QueryResult<Vec<Self::Pk>> {
        never!()
    }
    fn db_latest_update(_: &mut C) -> QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
        never!()
    }
    fn db_lookup(_: &Lookup) -> Result<BoxedFilter<Self::Table, C::Backend>, FilterError> {
        never!()
    }
}

#[allow(
    clippy::panic,
    reason = "never runs: the crate that uses these impls does not compile"
)]
impl<T: InvalidReplica> ReplicaModel for T {
    type Pk = T::Pk;
    const CQRS_ID: &'static str = "";
    const TYPE_NAME: &'static str = "";
    const MAPPING: Option<&'static [(&'static str, &'static str)]> = None;
    const PK_FIELD: &'static str = "";
    const REQUIRED: &'static [&'static str] = &[];
    const FIELDS: &'static [&'static str] = &[];
    const ONLY_DIRECT_SYNCS: bool = false;
    const META: bool = false;
    const SELECT_FOR_UPDATE: bool = false;
    const DEFAULT_HOOKS: bool = false;
    const CUSTOM_SERIALIZATION: bool = false;

    fn cqrs_pk(&self) -> &Self::Pk {
        never!()
    }
    fn cqrs_version(&self) -> Version {
        never!()
    }
    fn cqrs_from_data(
        _: &Map<String, Value>,
        _: Option<Self>,
        _: &str,
    ) -> std::result::Result<Self, ApplyError> {
        never!()
    }
}

#[allow(
    clippy::panic,
    reason = "never runs: the crate that uses these impls does not compile"
)]
impl<T: InvalidReplica, C: CqrsConnection> ReplicaTable<C> for T {
    type Table = ();

    fn db_get(_: &mut C, _: &Self::Pk, _: bool) -> QueryResult<Option<Self>> {
        never!()
    }
    fn db_insert(_: &mut C, _: &Self) -> QueryResult<()> {
        never!()
    }
    fn db_update(_: &mut C, _: &Self) -> QueryResult<()> {
        never!()
    }
    fn db_get_many(_: &mut C, _: &[Self::Pk], _: bool) -> QueryResult<Vec<Self>> {
        never!()
    }
    fn db_upsert(_: &mut C, _: &[Self]) -> QueryResult<()> {
        never!()
    }
    fn db_delete(_: &mut C, _: &Self::Pk) -> QueryResult<bool> {
        never!()
    }
    fn db_versions(_: &mut C, _: &[Self::Pk]) -> QueryResult<Vec<(Self::Pk, Version)>> {
        never!()
    }
    fn db_pks_where(
        _: &mut C,
        _: Vec<BoxedFilter<Self::Table, C::Backend>>,
        _: Option<&Self::Pk>,
        _: i64,
    ) -> QueryResult<Vec<Self::Pk>> {
        never!()
    }
    fn db_lookup(_: &Lookup) -> Result<BoxedFilter<Self::Table, C::Backend>, FilterError> {
        never!()
    }
    fn db_delete_many(_: &mut C, _: &[Self::Pk]) -> QueryResult<usize> {
        never!()
    }
    fn db_clear(_: &mut C) -> QueryResult<usize> {
        never!()
    }
    fn db_count(_: &mut C) -> QueryResult<i64> {
        never!()
    }
    fn db_latest_update(_: &mut C) -> QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
        never!()
    }
}

impl<T: InvalidReplicaHooks, C: CqrsConnection> ReplicaHooks<C> for T {}

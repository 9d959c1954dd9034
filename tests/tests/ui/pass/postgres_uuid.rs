//! A PostgreSQL-only model with a UUID key, a timestamptz and a decimal.
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_core::prelude::*;

diesel::table! {
    authors (id) {
        id -> Uuid,
        name -> Text,
        born -> Nullable<Date>,
        fee -> Numeric,
        cqrs_revision -> Integer,
        cqrs_updated -> Timestamptz,
    }
}

#[derive(CqrsMaster)]
#[diesel(table_name = authors)]
#[cqrs(cqrs_id = "author", backends(postgres))]
struct Author {
    id: uuid::Uuid,
    name: String,
    born: Option<NaiveDate>,
    fee: BigDecimal,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

#[derive(CqrsReplica)]
#[diesel(table_name = authors)]
#[cqrs(cqrs_id = "author", backends(postgres))]
struct AuthorRef {
    id: uuid::Uuid,
    name: String,
    born: Option<NaiveDate>,
    fee: BigDecimal,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

fn main() {}

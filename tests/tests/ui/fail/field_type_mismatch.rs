#![allow(unused_imports, dead_code)]
// an f64 field on a Numeric column: the first error is on the field, with what to use
use chrono::NaiveDateTime;
use cqrs_core::prelude::*;

diesel::table! {
    books (id) {
        id -> Integer,
        price -> Numeric,
        cqrs_revision -> Integer,
        cqrs_updated -> Timestamp,
    }
}

#[derive(CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", backends(sqlite))]
struct Book { id: i32, price: f64, cqrs_revision: i32, cqrs_updated: NaiveDateTime }

fn main() {}

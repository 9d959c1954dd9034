//! Exact decimals and UUID keys on SQLite, through `cqrs_core::types::{DecimalText, UuidText}`
//! on `Text` columns: master writes, the wire, the replica apply and filters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDateTime;
use cqrs_core::db::OutboxReader;
use cqrs_core::master::MasterTable;
use cqrs_core::memory::MemoryBroker;
use cqrs_core::prelude::*;
use cqrs_core::types::{DecimalText, UuidText};
use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel::{QueryDsl, RunQueryDsl};
use serde_json::json;

mod schema {
    diesel::table! {
        slots (id) {
            id -> Text,
            label -> Text,
            price -> Text,
            deposit -> Nullable<Text>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        slot_refs (id) {
            id -> Text,
            label -> Text,
            price -> Text,
            deposit -> Nullable<Text>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}
use schema::{slot_refs, slots};

const DDL: &str = "
CREATE TABLE slots (id TEXT PRIMARY KEY, label TEXT NOT NULL, price TEXT NOT NULL, deposit TEXT,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE slot_refs (id TEXT PRIMARY KEY, label TEXT NOT NULL, price TEXT NOT NULL, deposit TEXT,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
";

#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = slots)]
#[cqrs(cqrs_id = "slot", backends(sqlite))]
struct Slot {
    id: UuidText,
    label: String,
    price: DecimalText,
    deposit: Option<DecimalText>,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, CqrsReplica)]
#[diesel(table_name = slot_refs)]
#[cqrs(cqrs_id = "slot", backends(sqlite))]
struct SlotRef {
    id: UuidText,
    label: String,
    price: DecimalText,
    deposit: Option<DecimalText>,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

fn database() -> (SqliteConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    let mut conn = SqliteConnection::cqrs_connect(path.to_str().unwrap()).unwrap();
    conn.cqrs_setup().unwrap();
    conn.batch_execute(DDL).unwrap();
    (conn, dir)
}

fn slot(n: u128, price: &str) -> Slot {
    Slot {
        id: UuidText(uuid::Uuid::from_u128(n)),
        label: format!("slot {n}"),
        price: price.parse().unwrap(),
        deposit: n.is_multiple_of(2).then(|| "0.10".parse().unwrap()),
        cqrs_revision: 0,
        cqrs_updated: chrono::Utc::now().naive_utc(),
    }
}

/// The prices of the django-cqrs samples and values a double cannot hold.
const PRICES: [&str; 6] = [
    "9.99",
    "12.00",
    "1234567.89",
    "99999999.99",
    "0.1",
    "12345678901234567.89",
];

#[test]
fn decimals_and_uuids_round_trip_exactly_on_sqlite() {
    let (mut master, _m) = database();
    let (mut replica, _r) = database();
    for (n, price) in PRICES.iter().enumerate() {
        slot(n as u128 + 1, price).cqrs_insert(&mut master).unwrap();
    }
    // the master reads back exactly what it stored, scale included
    for (n, price) in PRICES.iter().enumerate() {
        let id = UuidText(uuid::Uuid::from_u128(n as u128 + 1));
        let stored = Slot::db_get(&mut master, &id, false).unwrap().unwrap();
        assert_eq!(stored.price.to_string(), *price);
    }
    let raw: Vec<(String, String)> = slots::table
        .select((slots::id, slots::price))
        .order(slots::price)
        .load(&mut master)
        .unwrap();
    assert!(
        raw.iter().any(|(_, p)| p == "12.00"),
        "stored as the text: {raw:?}"
    );
    assert!(raw[0].0.contains('-'), "UUIDs as hyphenated text: {raw:?}");

    // the wire: UUIDs as text, decimals as JSON numbers (django-cqrs's form)
    let out: Vec<serde_json::Value> = master
        .outbox_fetch(100)
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        out[0]["instance_pk"],
        json!("00000000-0000-0000-0000-000000000001")
    );
    assert_eq!(out[2]["instance_data"]["price"], json!(1_234_567.89));

    // the replica: what the wire carried, exactly (no double in between)
    let mut broker = MemoryBroker::new();
    assert_eq!(broker.relay(&mut master).unwrap(), PRICES.len());
    for outcome in broker.deliver(&mut replica, "replica").unwrap() {
        outcome.unwrap();
    }
    let id = UuidText(uuid::Uuid::from_u128(3));
    let row = SlotRef::cqrs_get(&mut replica, &id).unwrap().unwrap();
    assert_eq!(row.price.to_string(), "1234567.89");
    assert_eq!(row.deposit, None);
    let row = SlotRef::cqrs_get(&mut replica, &UuidText(uuid::Uuid::from_u128(2)))
        .unwrap()
        .unwrap();
    // the wire carries a JSON number (django-cqrs), so the scale is the number's
    assert_eq!(row.deposit.unwrap().to_string(), "0.1");

    // a decimal sent as a string (Django REST framework's form) keeps every digit
    let mut message = cqrs_core::Message::new(
        cqrs_core::SignalType::Save,
        "slot",
        json!({"id": "6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f", "label": "exact",
               "price": "12345678901234567.89", "deposit": null, "cqrs_revision": 0,
               "cqrs_updated": "2026-11-22 06:20:48.557649+00:00"})
        .as_object()
        .unwrap()
        .clone(),
        json!("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f"),
    );
    message.monotonic_revisions = true;
    let entry = cqrs_core::registry::replica::<SqliteConnection>("slot").unwrap();
    cqrs_core::batch::apply_one(&mut replica, entry.ops, &message, false).unwrap();
    let id: UuidText = "6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f".parse().unwrap();
    let row = SlotRef::cqrs_get(&mut replica, &id).unwrap().unwrap();
    assert_eq!(row.price.to_string(), "12345678901234567.89");
    // a bad UUID is a permanent error naming the field
    message.instance_pk = json!("not-a-uuid");
    message
        .instance_data
        .insert("id".into(), json!("not-a-uuid"));
    let error = cqrs_core::batch::apply_one(&mut replica, entry.ops, &message, false).unwrap_err();
    assert!(
        error.is_permanent() && error.to_string().contains("UUID"),
        "{error}"
    );
}

#[test]
fn decimal_filters_compare_numbers_not_text() {
    let (mut master, _m) = database();
    for (n, price) in PRICES.iter().enumerate() {
        slot(n as u128 + 1, price).cqrs_insert(&mut master).unwrap();
    }
    let count = |conn: &mut SqliteConnection, filter: serde_json::Value| {
        let filters = Slot::cqrs_filter(&filter).unwrap();
        Slot::db_count(conn, filters).unwrap()
    };
    // as text, "9.99" > "12345678901234567.89"; as numbers it is not
    assert_eq!(count(&mut master, json!({"price__gt": 100})), 3);
    assert_eq!(count(&mut master, json!({"price__lte": 12})), 3);
    assert_eq!(
        count(&mut master, json!({"price": 12})),
        1,
        "12 matches 12.00"
    );
    assert_eq!(
        count(&mut master, json!({"price__in": [0.1, "9.99", 7]})),
        2
    );
    assert_eq!(count(&mut master, json!({"deposit__isnull": true})), 3);
    assert_eq!(count(&mut master, json!({"deposit": null})), 3);
    assert_eq!(count(&mut master, json!({"deposit__gte": "0.1"})), 3);
    assert_eq!(
        count(
            &mut master,
            json!({"id": "00000000-0000-0000-0000-000000000002"})
        ),
        1
    );
    assert_eq!(
        count(
            &mut master,
            json!({"id__gt": "00000000-0000-0000-0000-000000000004"})
        ),
        2
    );
    let error = Slot::cqrs_filter(&json!({"price__contains": "9"}))
        .and_then(|f| Ok(Slot::db_count(&mut master, f)?))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("only text fields"), "{error}");
    let error = Slot::cqrs_filter(&json!({"price__gt": "cheap"}))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("decimal"), "{error}");
}

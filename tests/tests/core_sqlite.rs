//! cqrs-core on SQLite: master hooks, wire format, outbox, filters, apply rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scenarios;

macro_rules! sqlite_tests {
    ($($name:ident: |$($conn:ident),*| $body:expr;)*) => {$(
        #[test]
        fn $name() {
            common::logs();
            $(let ($conn, _guard) = common::sqlite(); let mut $conn = $conn;)*
            $body
        }
    )*};
}

common::core_scenarios!(sqlite_tests);

#[test]
fn registry_lists_every_model() {
    use cqrs_core::registry::{self, ModelKind};
    registry::check().unwrap();
    let models: Vec<_> = registry::models()
        .iter()
        .map(|m| (m.kind, m.cqrs_id))
        .collect();
    assert_eq!(
        models,
        [
            (ModelKind::Master, "author"),
            (ModelKind::Master, "book"),
            (ModelKind::Master, "counter"),
            (ModelKind::Master, "review"),
            (ModelKind::Replica, "author"),
            (ModelKind::Replica, "book"),
            (ModelKind::Replica, "review"),
        ]
    );
    assert!(registry::models()[1].type_name.ends_with("models::Book"));
    let err = registry::replica::<diesel::SqliteConnection>("nope")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown cqrs_id `nope`; registered replica models: author, book, review"
    );
    assert!(registry::master::<diesel::SqliteConnection>("counter").is_ok());
}

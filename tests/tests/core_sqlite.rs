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

sqlite_tests! {
    wire_format_matches_django: |master| scenarios::wire_format_matches_django(&mut master);
    master_bookkeeping: |master| scenarios::master_bookkeeping(&mut master);
    outbox_is_transactional: |master| scenarios::outbox_is_transactional(&mut master);
    master_attributes: |master| scenarios::master_attributes(&mut master);
    filters: |master| scenarios::filters(&mut master);
    revision_rules: |replica| scenarios::revision_rules(&mut replica);
    bad_payloads: |replica| scenarios::bad_payloads(&mut replica);
    hooks_and_flags: |replica| scenarios::hooks_and_flags(&mut replica);
    batch_with_savepoints: |replica| scenarios::batch_with_savepoints(&mut replica);
    end_to_end_in_memory: |master, replica| scenarios::end_to_end_in_memory(&mut master, &mut replica);
    batch_matches_sequential: |a, b| scenarios::batch_matches_sequential(&mut a, &mut b);
}

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

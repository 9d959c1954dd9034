//! Test bodies shared by the SQLite and PostgreSQL test files: each takes fresh master and
//! replica connections of one backend.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines
)]
#![allow(
    clippy::assigning_clones,
    reason = "clarity over one allocation in tests and examples"
)]

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime, Utc};
use cqrs_core::Registered;
use cqrs_core::batch::{BatchItem, apply_batch, apply_one};
use cqrs_core::master::MasterTable;
use cqrs_core::memory::MemoryBroker;
use cqrs_core::outbox::OutboxCursor;
use cqrs_core::prelude::*;
use cqrs_core::replica::{IgnoreReason, Outcome};
use cqrs_core::retry::RetryPolicy;
use cqrs_core::{Message, SignalType, registry};
use serde_json::{Value, json};

use super::*;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Python `str(datetime)` of an aware UTC datetime.
fn is_python_datetime(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    let re_ok = s.len() >= 25
        && s.as_bytes()[10] == b' '
        && s.ends_with("+00:00")
        && cqrs_core::value::parse_datetime(s).is_some();
    let micros_ok = match s.find('.') {
        Some(dot) => s[dot + 1..s.len() - 6].len() == 6,
        None => true,
    };
    re_ok && micros_ok
}

/// Checks that `ours` has the same keys and the same value forms as django-cqrs's `theirs`.
fn same_shape(ours: &Value, theirs: &Value, path: &str) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            // the one key this framework adds to django-cqrs's envelope (django-cqrs ignores it)
            let ours = |k: &&String| !(path.find('.').is_none() && *k == "monotonic_revisions");
            assert_eq!(
                a.keys().filter(ours).collect::<BTreeSet<_>>(),
                b.keys().collect::<BTreeSet<_>>(),
                "keys of {path}"
            );
            for (k, v) in a.iter().filter(|(k, _)| ours(k)) {
                same_shape(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::String(a), Value::String(b)) => {
            let ours_dt = cqrs_core::value::parse_datetime(a).is_some();
            let theirs_dt = cqrs_core::value::parse_datetime(b).is_some();
            assert_eq!(ours_dt, theirs_dt, "{path}: {a} vs {b}");
            if b.as_bytes().get(10) == Some(&b' ') {
                assert!(
                    is_python_datetime(ours),
                    "{path}: {a} is not in Python str() form"
                );
            }
            if b.contains('T') && theirs_dt {
                assert_eq!(a.len(), b.len(), "{path}: expires form {a} vs {b}");
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.is_f64(), b.is_f64(), "{path}: number form {a} vs {b}");
        }
        (a, b) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "{path}: {a} vs {b}"
        ),
    }
}

/// A master write produces the messages django-cqrs produces (samples/messages.jsonl).
pub fn wire_format_matches_django<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    Author: MasterStore<C>,
{
    let samples = sample_messages();
    let mut dune = Book::new(1, "Dune");
    dune.price = Some("9.99".parse().unwrap());
    let dune = dune.cqrs_insert(master).unwrap();
    let mut second = Book::new(2, "Neuromancer");
    second.price = Some("12.00".parse().unwrap());
    second.cqrs_insert(master).unwrap();
    Book::cqrs_update(master, &1, |b| b.title = "Dune (Deluxe Edition)".into()).unwrap();
    Book::cqrs_update(master, &2, |b| b.price = Some("8.99".parse().unwrap())).unwrap();
    dune.cqrs_sync(master, SyncTarget::Broadcast).unwrap();
    dune.cqrs_sync(master, SyncTarget::Queue("py_interop"))
        .unwrap();
    Book::cqrs_delete_pk(master, &2).unwrap();
    let mut author = Author::new("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f", "Ursula K. Le Guin")
        .cqrs_insert(master)
        .unwrap();
    author.name = "Ursula".into();
    author.cqrs_save(master).unwrap();

    let out = outbox(master);
    assert_eq!(out.len(), 9);
    // creates: sample 1
    same_shape(&out[0].1, &samples[0].1, "create");
    assert_eq!(out[0].0, "book");
    assert_eq!(out[0].1["previous_data"], json!({"title": null}));
    assert_eq!(out[0].1["instance_data"]["price"], json!(9.99));
    assert_eq!(out[1].1["instance_data"]["price"], json!(12.0));
    assert!(
        out[0].1["instance_data"].get("cover").is_none(),
        "cover is not in fields(...)"
    );
    // title change: sample 6; update without title change: sample 7
    same_shape(&out[2].1, &samples[5].1, "update title");
    assert_eq!(out[2].1["previous_data"], json!({"title": "Dune"}));
    assert_eq!(out[2].1["instance_data"]["cqrs_revision"], json!(1));
    same_shape(&out[3].1, &samples[6].1, "update other");
    assert_eq!(out[3].1["previous_data"], json!({}));
    // syncs: samples 11 and 15
    same_shape(&out[4].1, &samples[10].1, "sync");
    assert_eq!(out[4].0, "book");
    assert_eq!(out[4].1["signal_type"], "SYNC");
    same_shape(&out[5].1, &samples[14].1, "direct sync");
    assert_eq!(out[5].0, samples[14].0);
    assert_eq!(out[5].0, "cqrs.py_interop.book");
    // delete: sample 8
    same_shape(&out[6].1, &samples[7].1, "delete");
    assert_eq!(out[6].1["instance_data"]["cqrs_revision"], json!(2));
    assert_eq!(out[6].1["instance_data"]["id"], json!(2));
    // UUID-like text pk: sample 9 (plus our meta and correlation id)
    let mut theirs = samples[8].1.clone();
    theirs["meta"] = json!({"source": "", "signal": "", "name": ""});
    theirs["correlation_id"] = json!("x");
    same_shape(&out[7].1, &theirs, "author");
    assert_eq!(
        out[7].1["instance_pk"],
        json!("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f")
    );
    assert_eq!(
        out[7].1["meta"],
        json!({"source": "tests", "signal": "SAVE", "name": "Ursula K. Le Guin"})
    );
    assert_eq!(
        out[7].1["correlation_id"],
        json!("author-\"6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f\"-all")
    );
    assert_eq!(
        out[8].1["previous_data"],
        Value::Null,
        "no tracked fields: null"
    );
    // every body parses back, and says its revisions never restart
    for (_, body) in &out {
        assert!(message(body).monotonic_revisions);
    }
}

/// Revision bookkeeping on insert, save, update, create-with-closure and bulk writes.
pub fn master_bookkeeping<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
{
    let before = Utc::now().naive_utc() - Duration::seconds(1);
    let mut book = Book::new(10, "One");
    book.cqrs_revision = 42;
    let book = book.cqrs_insert(master).unwrap();
    assert_eq!(book.cqrs_revision, 0, "insert resets the revision");
    assert!(book.cqrs_updated > before);
    let mut changed = book.clone();
    changed.title = "Two".into();
    let saved = changed.cqrs_save(master).unwrap();
    assert_eq!(saved.cqrs_revision, 1);
    assert!(saved.cqrs_updated >= book.cqrs_updated);
    let updated = Book::cqrs_update(master, &10, |b| b.isbn = "x".into()).unwrap();
    assert_eq!(updated.cqrs_revision, 2);
    assert_eq!(updated.title, "Two");

    // the caller's own insert statement, e.g. for database-generated keys
    let created = Book::cqrs_create(master, |conn| {
        // the caller's own statement: here one that lets the database pick the key
        conn.batch_execute(
            "INSERT INTO books (title, author, isbn, published, created, cqrs_revision, cqrs_updated)
             VALUES ('Generated', 'A', '1', FALSE, '2026-01-01 00:00:00', 7, '2026-01-01 00:00:00')",
        )?;
        let filters = Book::cqrs_filter(&json!({"title": "Generated"})).unwrap();
        Ok(Book::db_page(conn, filters, None, 1)?[0].id)
    })
    .unwrap();
    assert_eq!(created.cqrs_revision, 0);
    assert_eq!(created.title, "Generated");

    let rows =
        Book::cqrs_bulk_insert(master, (100..110).map(|i| Book::new(i, "bulk")).collect()).unwrap();
    assert_eq!(rows.len(), 10);
    // Django lookups, as the tools build them (generic code cannot name a diesel predicate
    // for every backend; `bulk_update_takes_diesel_predicates` covers that form)
    let filters = Book::cqrs_filter(&json!({"id__gte": 100, "id__lt": 105})).unwrap();
    let bumped =
        Book::cqrs_bulk_update_filtered(master, filters, |b| b.title = "bulk2".into()).unwrap();
    assert_eq!(bumped.len(), 5);
    assert!(
        bumped
            .iter()
            .all(|b| b.cqrs_revision == 1 && b.title == "bulk2")
    );
    let out = outbox(master);
    // insert, save, update, create, 10 bulk inserts, 5 bulk updates
    assert_eq!(out.len(), 4 + 10 + 5);
    let last = &out.last().unwrap().1;
    assert_eq!(last["previous_data"], json!({"title": "bulk"}));

    // errors
    assert!(matches!(
        Book::cqrs_update(master, &9999, |_| ()),
        Err(cqrs_core::Error::NotFound { .. })
    ));
    assert!(!Book::cqrs_delete_pk(master, &9999).unwrap());
    assert!(
        Book::new(10, "dup").cqrs_insert(master).is_err(),
        "duplicate key fails"
    );
}

/// A rollback of the caller's transaction sends nothing; a commit keeps row and message.
pub fn outbox_is_transactional<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
{
    let result: Result<(), cqrs_core::Error> = cqrs_core::transaction(master, |conn| {
        Book::new(1, "rolled back").cqrs_insert(conn)?;
        Book::new(2, "rolled back too").cqrs_insert(conn)?;
        Err(cqrs_core::Error::NotFound {
            model: "test",
            pk: "abort".into(),
        })
    });
    assert!(result.is_err());
    assert_eq!(master.outbox_pending().unwrap(), 0);
    assert_eq!(Book::db_count(master, vec![]).unwrap(), 0);
    cqrs_core::transaction(master, |conn| {
        Book::new(1, "kept").cqrs_insert(conn)?;
        Book::cqrs_delete_pk(conn, &1)?;
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    let out = outbox(master);
    assert_eq!(
        out.iter()
            .map(|(_, b)| b["signal_type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["SAVE", "DELETE"]
    );

    // relay_batch: oldest first, only confirmed ids are removed
    let mut seen = Vec::new();
    let batch = cqrs_core::outbox::relay_batch(master, 1, &mut OutboxCursor::new(), |records| {
        seen.extend(records.iter().map(|r| r.id));
        Ok::<_, cqrs_core::Error>(vec![])
    })
    .unwrap();
    assert_eq!((batch.fetched, batch.published), (1, 0));
    assert_eq!(
        master.outbox_pending().unwrap(),
        2,
        "unconfirmed messages stay"
    );
    let batch = cqrs_core::outbox::relay_batch(master, 10, &mut OutboxCursor::new(), |records| {
        assert!(records.windows(2).all(|w| w[0].id < w[1].id));
        Ok::<_, cqrs_core::Error>(records.iter().map(|r| r.id).collect())
    })
    .unwrap();
    assert_eq!((batch.fetched, batch.published), (2, 2));
    assert_eq!(seen.len(), 1);
    assert_eq!(master.outbox_pending().unwrap(), 0);
}

/// `produce = false`, the sync filter, the custom serializer, delete data.
pub fn master_attributes<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    Author: MasterStore<C>,
    Counter: MasterStore<C>,
    Gauge: MasterStore<C>,
    Review: MasterStore<C>,
{
    // tracked_fields = "__all__": every field's old value, the bookkeeping ones included, as
    // django-cqrs's ALL_BASIC_FIELDS
    Gauge {
        id: 9,
        value: 1,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    }
    .cqrs_insert(master)
    .unwrap();
    Gauge::cqrs_update(master, &9, |g| g.value = 2).unwrap();
    let out = outbox(master);
    assert_eq!(
        out[0].1["previous_data"],
        json!({"id": null, "value": null, "cqrs_revision": null, "cqrs_updated": null}),
        "a create: every tracked field, as null"
    );
    let previous = out[1].1["previous_data"].as_object().unwrap();
    assert_eq!(previous["value"], json!(1));
    assert_eq!(previous["cqrs_revision"], json!(0));
    assert_eq!(
        previous["cqrs_updated"], out[0].1["instance_data"]["cqrs_updated"],
        "the old cqrs_updated"
    );
    assert!(
        !previous.contains_key("id"),
        "unchanged fields are left out"
    );
    clear_outbox(master);

    let counter = Counter {
        id: 1,
        value: 1,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    }
    .cqrs_insert(master)
    .unwrap();
    let counter = Counter::cqrs_update(master, &counter.id, |c| c.value += 1).unwrap();
    assert_eq!(
        counter.cqrs_revision, 1,
        "produce = false keeps the bookkeeping"
    );
    // SYNC sends nothing either, as django-cqrs's cqrs_sync (its post_save returns at once)
    assert!(!counter.cqrs_sync(master, SyncTarget::Broadcast).unwrap());
    assert_eq!(
        Counter::cqrs_sync_where(master, &[], SyncTarget::Queue("q"), 10, &mut |_| {}).unwrap(),
        0
    );
    assert!(!registry::master::<C>("counter").unwrap().ops.produces());
    Counter::cqrs_delete_pk(master, &1).unwrap();
    assert_eq!(
        master.outbox_pending().unwrap(),
        0,
        "produce = false sends nothing"
    );

    // partial saves (django-cqrs's save(update_fields=...)): only the named columns; the
    // revision moves only with update_cqrs_fields (its default: CQRS_AUTO_UPDATE_FIELDS, off)
    clear_outbox(master);
    let mut book = Book::new(3, "Dune").cqrs_insert(master).unwrap();
    clear_outbox(master);
    book.title = "Dune Messiah".to_owned();
    book.isbn = "not written".to_owned();
    let stored = book.cqrs_save_fields(master, &["title"], None).unwrap();
    assert_eq!(
        (
            stored.title.as_str(),
            stored.isbn.as_str(),
            stored.cqrs_revision
        ),
        ("Dune Messiah", "9780441013593", 0),
        "only the named column; no revision bump by default"
    );
    assert_eq!(
        stored.cqrs_updated, book.cqrs_updated,
        "cqrs_updated stays too"
    );
    let out = outbox(master);
    assert_eq!(
        out.len(),
        1,
        "a partial save still sends its SAVE, as django-cqrs"
    );
    assert_eq!(out[0].1["instance_data"]["cqrs_revision"], json!(0));
    assert_eq!(out[0].1["instance_data"]["title"], json!("Dune Messiah"));
    assert_eq!(
        out[0].1["previous_data"],
        json!({"title": "Dune"}),
        "tracked fields as for a full save"
    );
    clear_outbox(master);
    book.title = "Children of Dune".to_owned();
    let stored = book
        .cqrs_save_fields(master, &["title", "isbn"], Some(true))
        .unwrap();
    assert_eq!(
        (stored.isbn.as_str(), stored.cqrs_revision),
        ("not written", 1),
        "update_cqrs_fields bumps the revision"
    );
    assert!(stored.cqrs_updated > book.cqrs_updated);
    assert_eq!(
        outbox(master)[0].1["instance_data"]["cqrs_revision"],
        json!(1)
    );
    clear_outbox(master);
    let error = book
        .cqrs_save_fields(master, &["title", "nope"], None)
        .unwrap_err();
    assert!(
        error.to_string().contains("no field `nope`") && error.to_string().contains("isbn"),
        "{error}"
    );
    assert_eq!(master.outbox_pending().unwrap(), 0, "nothing written");
    assert!(matches!(
        book.cqrs_save_fields(master, &[], Some(true)),
        Ok(b) if b.cqrs_revision == 2
    ));
    Book::cqrs_delete_pk(master, &3).unwrap();
    clear_outbox(master);

    let draft = Book::new(1, "draft: secret").cqrs_insert(master).unwrap();
    Book::cqrs_update(master, &1, |b| b.isbn = "2".into()).unwrap();
    assert!(!draft.cqrs_sync(master, SyncTarget::Broadcast).unwrap());
    // picked rows (the admin action): one sent, one filtered out, one missing, with reasons
    let _ = Book::new(2, "Solaris").cqrs_insert(master).unwrap();
    clear_outbox(master);
    let report = Book::cqrs_sync_selected(master, &[2, 1, 404], SyncTarget::Queue("q")).unwrap();
    assert_eq!(report.synced, ["2"]);
    assert_eq!(
        report.failed,
        [
            ("1".to_owned(), cqrs_core::master::NotSynced::Filtered),
            ("404".to_owned(), cqrs_core::master::NotSynced::Missing)
        ]
    );
    assert_eq!(
        report.to_string(),
        "1 successfully synced. 2 failed: [1, 404]"
    );
    let sent = outbox(master);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["signal_type"], json!("SYNC"));
    assert_eq!(sent[0].1["instance_pk"], json!(2));
    Book::cqrs_delete_pk(master, &2).unwrap();
    clear_outbox(master);
    Book::cqrs_delete_pk(master, &1).unwrap();
    assert_eq!(
        master.outbox_pending().unwrap(),
        0,
        "the sync filter excludes every signal"
    );

    Review {
        review_id: 7,
        book_id: 3,
        stars: 5,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    }
    .cqrs_insert(master)
    .unwrap();
    let author = Author::new("a1", "Lem").cqrs_insert(master).unwrap();
    author.cqrs_delete(master).unwrap();
    let out = outbox(master);
    let review = &out[0].1;
    assert_eq!(review["instance_pk"], json!(7));
    let data = review["instance_data"].as_object().unwrap();
    assert_eq!(data["summary"], json!("5 stars"));
    assert_eq!(data["book"], json!(3));
    assert_eq!(data["cqrs_revision"], json!(0));
    assert!(data.contains_key("cqrs_updated"));
    let delete = &out[2].1;
    assert_eq!(delete["signal_type"], "DELETE");
    assert_eq!(delete["instance_data"]["custom"], json!({"name": "Lem"}));
    assert_eq!(delete["meta"]["signal"], "DELETE");
}

/// Django lookups become diesel filters; errors list what is valid.
pub fn filters<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
{
    for (i, title) in [
        "Dune",
        "Dune Messiah",
        "Solaris",
        "100% pure_",
        "Neuromancer",
    ]
    .iter()
    .enumerate()
    {
        let mut book = Book::new(i32::try_from(i).unwrap() + 1, title);
        if i == 2 {
            book.price = None;
        }
        book.published = i % 2 == 0;
        book.cqrs_insert(master).unwrap();
    }
    let count = |conn: &mut C, filter: Value| -> Vec<i32> {
        let filters = Book::cqrs_filter(&filter).unwrap();
        let mut ids: Vec<i32> = Book::db_page(conn, filters, None, 100)
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(count(master, json!({})), [1, 2, 3, 4, 5]);
    assert_eq!(count(master, json!({"id": 2})), [2]);
    assert_eq!(count(master, json!({"pk": 2})), [2]);
    assert_eq!(count(master, json!({"id__exact": 3})), [3]);
    assert_eq!(count(master, json!({"id__in": [1, 5, 9]})), [1, 5]);
    assert_eq!(count(master, json!({"pk__in": []})), Vec::<i32>::new());
    assert_eq!(count(master, json!({"id__gt": 3})), [4, 5]);
    assert_eq!(count(master, json!({"id__gte": 3})), [3, 4, 5]);
    assert_eq!(count(master, json!({"id__lt": 3})), [1, 2]);
    assert_eq!(count(master, json!({"id__lte": 3, "id__gte": 2})), [2, 3]);
    assert_eq!(count(master, json!({"price__isnull": true})), [3]);
    assert_eq!(count(master, json!({"price": null})), [3]);
    assert_eq!(count(master, json!({"price__isnull": false})), [1, 2, 4, 5]);
    assert_eq!(count(master, json!({"price__gt": 5})), [1, 2, 4, 5]);
    assert_eq!(count(master, json!({"title__contains": "Dune"})), [1, 2]);
    assert_eq!(count(master, json!({"title__startswith": "Dune M"})), [2]);
    assert_eq!(count(master, json!({"title__endswith": "mancer"})), [5]);
    assert_eq!(
        count(master, json!({"title__contains": "% pure_"})),
        [4],
        "wildcards are escaped"
    );
    assert_eq!(count(master, json!({"title__contains": "%"})), [4]);
    assert_eq!(count(master, json!({"published": true})), [1, 3, 5]);
    assert_eq!(
        count(master, json!({"created__lt": "2999-01-01 00:00:00+00:00"})),
        [1, 2, 3, 4, 5]
    );

    let err = |filter: Value| Book::cqrs_filter(&filter).err().unwrap().to_string();
    let e = err(json!({"nope": 1}));
    assert!(
        e.contains("unknown field `nope`") && e.contains("pk, id, title, author"),
        "{e}"
    );
    assert!(err(json!({"id__near": 1})).contains("valid lookups: exact, in, gt"));
    assert!(err(json!({"id__contains": 1})).contains("only text fields"));
    assert!(err(json!({"id": "x"})).contains("filter `id__exact`"));
    assert!(err(json!({"id__in": 3})).contains("expected an array"));
    assert!(err(json!({"price__isnull": "yes"})).contains("expected a boolean"));
    assert!(
        err(json!({"cover": 1})).contains("unknown field `cover`"),
        "binary fields are not filterable"
    );
    assert!(err(json!([1])).contains("JSON object"));
}

fn save(id: i32, title: &str, revision: i32, updated: NaiveDateTime) -> Message {
    let data = json!({
        "id": id, "title": title, "author": "A", "isbn": "i", "published": true, "price": 1.5,
        "created": "2026-11-22 06:20:48.557649+00:00",
        "cqrs_revision": revision,
        "cqrs_updated": cqrs_core::value::CqrsValue::to_cqrs(&updated),
    });
    Message::new(
        SignalType::Save,
        "book",
        data.as_object().unwrap().clone(),
        json!(id),
    )
}

fn with_signal(mut m: Message, signal: SignalType) -> Message {
    m.signal_type = signal;
    m
}

fn delete(id: i32, revision: i32, updated: NaiveDateTime) -> Message {
    let data = json!({"id": id, "cqrs_revision": revision,
        "cqrs_updated": cqrs_core::value::CqrsValue::to_cqrs(&updated)});
    Message::new(
        SignalType::Delete,
        "book",
        data.as_object().unwrap().clone(),
        json!(id),
    )
}

fn apply<C: Registered>(conn: &mut C, m: &Message) -> Result<Outcome, ApplyError> {
    let entry = registry::replica::<C>(&m.cqrs_id).unwrap();
    apply_one(conn, entry.ops, m, false)
}

fn stored<C: Registered>(conn: &mut C, id: i32) -> Option<BookRef>
where
    BookRef: ReplicaStore<C>,
{
    BookRef::cqrs_get(conn, &id).unwrap()
}

/// Every row of the apply-rules table, with the mapping and the defaulted/skipped fields.
pub fn revision_rules<C>(replica: &mut C)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    let t0 = Utc::now().naive_utc() - Duration::minutes(10);
    let t = |s: i64| t0 + Duration::seconds(s);

    assert_eq!(
        apply(replica, &save(1, "v0", 0, t(0))).unwrap(),
        Outcome::Created
    );
    let row = stored(replica, 1).unwrap();
    assert_eq!(
        (
            row.name.as_str(),
            row.cqrs_revision,
            row.note.as_str(),
            row.local_flag
        ),
        ("v0", 0, "", false)
    );
    assert_eq!(row.price, Some("1.5".parse().unwrap()));
    assert_eq!(row.created.to_string(), "2026-11-22 06:20:48.557649");

    assert_eq!(
        apply(replica, &save(1, "v0 again", 0, t(0))).unwrap(),
        Outcome::Ignored(IgnoreReason::Duplicate)
    );
    assert_eq!(
        apply(replica, &save(1, "v1", 1, t(1))).unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        apply(replica, &save(1, "v1 again", 1, t(1))).unwrap(),
        Outcome::Ignored(IgnoreReason::Duplicate)
    );
    assert_eq!(
        apply(replica, &save(1, "v0 late", 0, t(0))).unwrap(),
        Outcome::Ignored(IgnoreReason::Stale)
    );
    assert_eq!(
        apply(replica, &save(1, "v4", 4, t(4))).unwrap(),
        Outcome::Updated,
        "gaps apply with a warning"
    );
    assert_eq!(stored(replica, 1).unwrap().name, "v4");
    assert_eq!(
        apply(replica, &save(1, "v3 late", 3, t(3))).unwrap(),
        Outcome::Ignored(IgnoreReason::Stale)
    );
    // SYNC applies whatever the revision (downgrade allowed)
    let sync = with_signal(save(1, "synced v2", 2, t(2)), SignalType::Sync);
    assert_eq!(apply(replica, &sync).unwrap(), Outcome::Updated);
    assert_eq!(stored(replica, 1).unwrap().cqrs_revision, 2);

    // fields absent from the message keep their value on update; the local field is untouched
    diesel::connection::SimpleConnection::batch_execute(
        replica,
        "UPDATE book_refs SET local_flag = TRUE, note = 'kept' WHERE id = 1",
    )
    .unwrap();
    assert_eq!(
        apply(replica, &save(1, "v5", 5, t(5))).unwrap(),
        Outcome::Updated
    );
    let row = stored(replica, 1).unwrap();
    assert!(
        row.local_flag,
        "a skipped field is never written from messages"
    );
    assert_eq!(row.note, "kept");

    // DELETE older than the stored row: ignored
    assert_eq!(
        apply(replica, &delete(1, 3, t(3))).unwrap(),
        Outcome::Ignored(IgnoreReason::StaleDelete)
    );
    assert!(stored(replica, 1).is_some());
    // DELETE: applied, tombstone recorded
    assert_eq!(
        apply(replica, &delete(1, 6, t(6))).unwrap(),
        Outcome::Deleted
    );
    assert!(stored(replica, 1).is_none());
    assert!(replica.tombstone_get("book", "1").unwrap().is_some());
    // a SAVE or SYNC older than the delete cannot resurrect the row
    assert_eq!(
        apply(replica, &save(1, "v5 late", 5, t(5))).unwrap(),
        Outcome::Ignored(IgnoreReason::Deleted)
    );
    let old_sync = with_signal(save(1, "old sync", 5, t(5)), SignalType::Sync);
    assert_eq!(
        apply(replica, &old_sync).unwrap(),
        Outcome::Ignored(IgnoreReason::Deleted)
    );
    assert!(stored(replica, 1).is_none());
    // ... but a SYNC sent to this replica's queue (an operator's repair) restores it
    let entry = registry::replica::<C>("book").unwrap();
    assert_eq!(
        apply_one(replica, entry.ops, &old_sync, true).unwrap(),
        Outcome::Created
    );
    assert!(replica.tombstone_get("book", "1").unwrap().is_none());
    assert_eq!(
        apply(replica, &delete(1, 6, t(6))).unwrap(),
        Outcome::Deleted
    );
    assert!(stored(replica, 1).is_none());
    // a duplicate delete is harmless
    assert_eq!(
        apply(replica, &delete(1, 6, t(6))).unwrap(),
        Outcome::AlreadyAbsent
    );
    // a row re-created after its delete (later cqrs_updated, revision back to 0) is applied
    assert_eq!(
        apply(replica, &save(1, "reborn", 0, t(20))).unwrap(),
        Outcome::Created
    );
    assert!(replica.tombstone_get("book", "1").unwrap().is_none());
    // ... and the old incarnation's delete, arriving late, does not remove it
    assert_eq!(
        apply(replica, &delete(1, 6, t(6))).unwrap(),
        Outcome::Ignored(IgnoreReason::StaleDelete)
    );
    assert_eq!(stored(replica, 1).unwrap().name, "reborn");

    // a re-created row arriving before the old incarnation's delete replaces the old row
    apply(replica, &save(2, "old life", 3, t(3))).unwrap();
    assert_eq!(
        apply(replica, &save(2, "new life", 0, t(30))).unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        apply(replica, &delete(2, 4, t(4))).unwrap(),
        Outcome::Ignored(IgnoreReason::StaleDelete)
    );
    assert_eq!(stored(replica, 2).unwrap().name, "new life");

    // django-cqrs re-creation in the delete's microsecond (clock order): the new row wins
    apply(replica, &save(4, "x", 2, t(40))).unwrap();
    assert_eq!(
        apply(replica, &delete(4, 3, t(41))).unwrap(),
        Outcome::Deleted
    );
    assert_eq!(
        apply(replica, &save(4, "same microsecond", 0, t(41))).unwrap(),
        Outcome::Created
    );

    // DELETE of a row this replica never had: recorded, so that a late create is blocked
    assert_eq!(
        apply(replica, &delete(3, 1, t(10))).unwrap(),
        Outcome::AlreadyAbsent
    );
    assert_eq!(
        apply(replica, &save(3, "late create", 0, t(9))).unwrap(),
        Outcome::Ignored(IgnoreReason::Deleted)
    );

    // tombstones are purged by age
    assert!(replica.tombstone_get("book", "3").unwrap().is_some());
    assert_eq!(
        replica
            .tombstone_purge(Utc::now() + Duration::seconds(1))
            .unwrap(),
        1
    );
    assert!(replica.tombstone_get("book", "3").unwrap().is_none());

    // so are the event inbox's entries: a purged event id is taken again
    assert!(replica.inbox_insert("h", "ev-1").unwrap());
    assert!(!replica.inbox_insert("h", "ev-1").unwrap());
    assert_eq!(
        replica
            .inbox_purge(Utc::now() - Duration::hours(1))
            .unwrap(),
        0,
        "a fresh entry is kept"
    );
    assert_eq!(
        replica
            .inbox_purge(Utc::now() + Duration::seconds(1))
            .unwrap(),
        1
    );
    assert!(replica.inbox_insert("h", "ev-1").unwrap());
}

/// Bad payloads are typed, permanent errors naming the model, the pk and the field; nothing
/// of a failed message is written.
pub fn bad_payloads<C>(replica: &mut C)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    let now = Utc::now().naive_utc();
    let err = |conn: &mut C, m: Message| {
        let e = apply(conn, &m).unwrap_err();
        assert!(e.is_permanent(), "{e} should be permanent");
        e.to_string()
    };
    let mut m = save(1, "x", 0, now);
    m.instance_data.remove("title");
    assert_eq!(
        err(replica, m),
        "book: pk 1: bad mapping: master field `title` is not in the message"
    );
    let mut m = save(1, "x", 0, now);
    m.instance_data.remove("id");
    assert!(err(replica, m).contains("bad mapping: master field `id`"));
    let mut m = save(1, "x", 0, now);
    m.instance_data.insert("published".into(), json!("yes"));
    assert_eq!(
        err(replica, m),
        "book: pk 1: field `published`: expected a boolean, found string \"yes\""
    );
    let mut m = save(1, "x", 0, now);
    m.instance_data
        .insert("created".into(), json!("2026-13-45 99:00:00"));
    assert!(err(replica, m).contains("field `created`: expected a datetime"));
    let mut m = save(1, "x", 0, now);
    m.instance_data.remove("cqrs_revision");
    assert!(err(replica, m).contains("required field `cqrs_revision` is missing"));
    let mut m = save(1, "x", 0, now);
    m.instance_data.insert("cqrs_updated".into(), json!(12));
    assert!(err(replica, m).contains("field `cqrs_updated`"));
    let mut m = save(1, "x", 0, now);
    m.instance_data.insert("id".into(), json!("seven"));
    assert!(err(replica, m).contains("field `id`: expected an integer"));
    let mut m = save(1, "x", 0, now);
    m.instance_data.insert("price".into(), json!({"a": 1}));
    assert!(err(replica, m).contains("field `price`: expected a decimal number"));
    // a decimal no column of this model can hold (SQLite would store infinity, and the row
    // could never be read again): refused before it is written
    let mut m = save(1, "x", 0, now);
    m.instance_data.insert("price".into(), json!("1e400"));
    let e = apply(replica, &m).unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("within ±1.8e308"),
        "{e}"
    );
    let mut d = delete(1, 1, now);
    d.instance_data.insert("id".into(), json!([1]));
    assert!(err(replica, d).contains("field `id`"));
    assert_eq!(
        BookRef::cqrs_count(replica).unwrap(),
        0,
        "nothing was written"
    );

    // a hook's permanent and transient errors, and a database CHECK violation (permanent)
    let author = |id: &str, name: &str| {
        let data = json!({"id": id, "name": name, "cqrs_revision": 0,
            "cqrs_updated": "2026-11-22 06:20:48+00:00"});
        Message::new(
            SignalType::Save,
            "author",
            data.as_object().unwrap().clone(),
            json!(id),
        )
    };
    let e = apply(replica, &author("a", "reject me")).unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("names may not be"));
    let e = apply(replica, &author("b", "check-fails")).unwrap_err();
    assert!(e.is_permanent(), "CHECK violations are permanent: {e}");
    let e = apply(replica, &author("c", "flaky1")).unwrap_err();
    assert!(e.is_transient());
    assert_eq!(
        apply(replica, &author("c", "flaky1")).unwrap(),
        Outcome::Created,
        "applies on the retry"
    );
    // instance_pk and the data's key name different rows: rejected, nothing written
    let mut m = save(7, "mismatch", 0, now);
    m.instance_pk = json!(6);
    assert_eq!(
        err(replica, m),
        "book: instance_pk 6 differs from the key 7 in the data"
    );
    assert!(stored(replica, 6).is_none() && stored(replica, 7).is_none());
    let mut m = save(8, "x", 0, now);
    m.signal_type = SignalType::Delete;
    m.instance_pk = json!(9);
    assert!(err(replica, m).contains("instance_pk 9 differs from the key 8"));
    // hostile numbers meet stored ones without overflowing (a panic would kill the worker)
    for (first, second) in [
        (i32::MIN, i32::MAX),
        (i32::MAX, i32::MIN),
        (i32::MAX, i32::MAX),
        (-1, 0),
    ] {
        let id = 100 + first.rem_euclid(50);
        apply(replica, &save(id, "extreme", first, now)).unwrap();
        assert!(apply(replica, &save(id, "extreme", second, now)).is_ok());
        let mut delete = save(id, "extreme", second, now);
        delete.signal_type = SignalType::Delete;
        assert!(apply(replica, &delete).is_ok());
        let mut late = save(id, "extreme", second, now + Duration::days(36_500));
        late.retries = u32::MAX;
        assert!(apply(replica, &late).is_ok());
    }
}

/// Custom hooks: meta reaches the hook; custom serialization; only direct syncs; retry policy.
pub fn hooks_and_flags<C>(replica: &mut C)
where
    C: Registered,
    AuthorRef: ReplicaStore<C>,
    ReviewRef: ReplicaStore<C>,
{
    let data = json!({"id": "u1", "name": "Lem", "cqrs_revision": 0, "cqrs_updated": "2026-11-22 06:20:48+00:00"});
    let mut m = Message::new(
        SignalType::Save,
        "author",
        data.as_object().unwrap().clone(),
        json!("u1"),
    );
    m.meta = Some(json!({"source": "catalogue"}));
    assert_eq!(apply(replica, &m).unwrap(), Outcome::Created);
    assert_eq!(
        AuthorRef::cqrs_get(replica, &"u1".to_owned())
            .unwrap()
            .unwrap()
            .meta_source
            .as_deref(),
        Some("catalogue")
    );
    let entry = registry::replica::<C>("author").unwrap();
    let policy = RetryPolicy::default();
    let transient = ApplyError::retry("author", 1, "later");
    assert!(entry.ops.should_retry(4, &transient, &policy));
    assert!(
        !entry.ops.should_retry(5, &transient, &policy),
        "the model caps retries at 5"
    );
    assert!(
        !entry
            .ops
            .should_retry(0, &ApplyError::reject("author", 1, "no"), &policy)
    );
    assert_eq!(entry.ops.retry_delay(2, &policy), policy.delay * 3);
    let book = registry::replica::<C>("book").unwrap();
    assert!(book.ops.should_retry(29, &transient, &policy));
    assert!(
        !book.ops.should_retry(30, &transient, &policy),
        "default: 30 retries"
    );
    assert_eq!(book.ops.retry_delay(7, &policy), policy.delay);

    let review = json!({"id": 9, "book": 1, "stars": 4, "summary": "good", "cqrs_revision": 0,
        "cqrs_updated": "2026-11-22 06:20:48+00:00"});
    let review = Message::new(
        SignalType::Save,
        "review",
        review.as_object().unwrap().clone(),
        json!(9),
    );
    assert_eq!(apply(replica, &review).unwrap(), Outcome::Created);
    let row = ReviewRef::cqrs_get(replica, &9).unwrap().unwrap();
    assert_eq!(
        row.summary, "GOOD",
        "custom serialization hooks build the row"
    );
    let mut sync = with_signal(review.clone(), SignalType::Sync);
    sync.instance_data.insert("summary".into(), json!("synced"));
    let entry = registry::replica::<C>("review").unwrap();
    assert_eq!(
        apply_one(replica, entry.ops, &sync, false).unwrap(),
        Outcome::Ignored(IgnoreReason::BroadcastSync)
    );
    assert_eq!(
        apply_one(replica, entry.ops, &sync, true).unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        ReviewRef::cqrs_get(replica, &9).unwrap().unwrap().summary,
        "SYNCED"
    );
}

/// One transaction, a savepoint per message: a bad message never rolls back the others.
pub fn batch_with_savepoints<C>(replica: &mut C)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
    AuthorRef: ReplicaStore<C>,
{
    let now = Utc::now().naive_utc();
    let mut bad = save(2, "bad", 0, now);
    bad.instance_data.insert("published".into(), json!(3));
    let author = json!({"id": "w1", "name": "Wells", "cqrs_revision": 0, "cqrs_updated": "2026-11-22 06:20:48+00:00"});
    let author = Message::new(
        SignalType::Save,
        "author",
        author.as_object().unwrap().clone(),
        json!("w1"),
    );
    let messages = [
        save(1, "one", 0, now),
        bad,
        author,
        save(3, "three", 0, now),
        save(1, "one dup", 0, now),
    ];
    let ops = registry::replica::<C>("book").unwrap().ops;
    let author_ops = registry::replica::<C>("author").unwrap().ops;
    let items: Vec<_> = messages
        .iter()
        .map(|m| BatchItem {
            ops: if m.cqrs_id == "author" {
                author_ops
            } else {
                ops
            },
            message: m,
            direct: false,
        })
        .collect();
    let results = apply_batch(replica, &items).unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_ref().unwrap(), &Outcome::Created);
    assert!(results[1].as_ref().unwrap_err().is_permanent());
    assert_eq!(
        results[2].as_ref().unwrap(),
        &Outcome::Created,
        "each model applies its own messages"
    );
    assert_eq!(results[3].as_ref().unwrap(), &Outcome::Created);
    assert_eq!(
        results[4].as_ref().unwrap(),
        &Outcome::Ignored(IgnoreReason::Duplicate)
    );
    assert_eq!(BookRef::cqrs_count(replica).unwrap(), 2);
    assert!(
        AuthorRef::cqrs_get(replica, &"w1".to_owned())
            .unwrap()
            .is_some()
    );
    // a batch of one that fails leaves nothing behind either
    let mut bad = save(4, "bad", 0, now);
    bad.instance_data.insert("price".into(), json!("abc"));
    let results = apply_batch(
        replica,
        &[BatchItem {
            ops,
            message: &bad,
            direct: false,
        }],
    )
    .unwrap();
    assert!(results[0].is_err());
    assert_eq!(BookRef::cqrs_count(replica).unwrap(), 2);
}

/// Master -> outbox -> in-memory broker -> replica: equal at the end, deletes included.
pub fn end_to_end_in_memory<C>(master: &mut C, replica: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
    Author: MasterStore<C>,
    AuthorRef: ReplicaStore<C>,
{
    for i in 1..=20 {
        Book::new(i, &format!("Book {i}"))
            .cqrs_insert(master)
            .unwrap();
    }
    for i in (1..=20).step_by(3) {
        Book::cqrs_update(master, &i, |b| b.title.push_str(" (2nd ed.)")).unwrap();
    }
    for i in (1..=20).step_by(5) {
        Book::cqrs_delete_pk(master, &i).unwrap();
    }
    Author::new("x", "Lem").cqrs_insert(master).unwrap();
    let mut broker = MemoryBroker::new();
    assert_eq!(broker.relay(master).unwrap(), 20 + 7 + 4 + 1);
    let outcomes = broker.deliver(replica, "replica").unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let master_rows = Book::db_page(master, vec![], None, 1000).unwrap();
    let replica_rows: Vec<BookRef> = (1..=20)
        .filter_map(|i| BookRef::cqrs_get(replica, &i).unwrap())
        .collect();
    assert_eq!(master_rows.len(), 16);
    assert_eq!(replica_rows.len(), 16);
    for (m, r) in master_rows.iter().zip(&replica_rows) {
        assert_eq!(
            (m.id, &m.title, m.cqrs_revision),
            (r.id, &r.name, r.cqrs_revision)
        );
        assert_eq!(m.price, r.price);
        assert_eq!(m.created, r.created);
        assert_eq!(m.cqrs_updated, r.cqrs_updated);
    }
    // the registry's tools see the same
    let versions = registry::replica::<C>("book")
        .unwrap()
        .ops
        .versions(replica, &[json!(2), json!(3), json!(6), json!(999)])
        .unwrap();
    assert_eq!(versions.len(), 2);
    let missing = registry::master::<C>("book")
        .unwrap()
        .ops
        .missing(master, &[json!(1), json!(2), json!(6)])
        .unwrap();
    assert_eq!(missing, [json!(1), json!(6)]);
}

/// Batches written with multi-row statements end exactly as the same messages applied one by
/// one: same outcomes, same rows, same tombstones (reordered and duplicated streams with
/// updates, deletes and re-created rows).
pub fn batch_matches_sequential<C>(sequential: &mut C, batched: &mut C)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    for (round, seed) in [
        0x2545_f491_4f6c_dd1d_u64,
        0x9e37_79b9_7f4a_7c15,
        7,
        0xdead_beef,
    ]
    .into_iter()
    .enumerate()
    {
        batch_round(
            sequential,
            batched,
            i32::try_from(round).unwrap() * 100,
            seed,
        );
    }
}

fn batch_round<C>(sequential: &mut C, batched: &mut C, offset: i32, seed: u64)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    let base = Utc::now().naive_utc() - Duration::hours(1);
    let mut seed = seed;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // a master history: per row, incarnations of updates, deletes and re-creations
    let mut messages = Vec::new();
    let mut clock = 0i64;
    for pk in (1 + offset)..=(25 + offset) {
        let mut rev = 0;
        messages.push(save(
            pk,
            &format!("r{pk} v0"),
            0,
            base + Duration::milliseconds(clock),
        ));
        for _ in 0..next(6) {
            clock += 1;
            match next(5) {
                0 => {
                    rev += 1;
                    messages.push(delete(pk, rev, base + Duration::milliseconds(clock)));
                    clock += 1;
                    rev = 0;
                    messages.push(save(
                        pk,
                        &format!("r{pk} reborn"),
                        0,
                        base + Duration::milliseconds(clock),
                    ));
                }
                1 => messages.push(with_signal(
                    save(
                        pk,
                        &format!("r{pk} sync {rev}"),
                        rev,
                        base + Duration::milliseconds(clock),
                    ),
                    SignalType::Sync,
                )),
                _ => {
                    rev += 1;
                    messages.push(save(
                        pk,
                        &format!("r{pk} v{rev}"),
                        rev,
                        base + Duration::milliseconds(clock),
                    ));
                }
            }
        }
        if next(4) == 0 {
            clock += 1;
            messages.push(delete(pk, rev + 1, base + Duration::milliseconds(clock)));
        }
    }
    // reorder neighbours and duplicate some messages, as retries and redeliveries do
    for i in 1..messages.len() {
        if next(3) == 0 {
            messages.swap(i - 1, i);
        }
    }
    for _ in 0..15 {
        let i = usize::try_from(next(messages.len() as u64)).unwrap();
        messages.push(messages[i].clone());
    }
    let mut bad = save(99 + offset, "bad", 0, base);
    bad.instance_data.insert("published".into(), json!("no"));
    messages.insert(10, bad);

    let ops = registry::replica::<C>("book").unwrap().ops;
    let one_by_one: Vec<_> = messages
        .iter()
        .map(|m| apply_one(sequential, ops, m, false).map_err(|e| e.to_string()))
        .collect();
    let in_batches: Vec<_> = apply_in_batches(batched, ops, &messages, || {
        usize::try_from(1 + next(40)).unwrap()
    })
    .into_iter()
    .map(|r| r.map_err(|e| e.to_string()))
    .collect();
    assert_eq!(one_by_one, in_batches, "same outcome for every message");
    let rows = |conn: &mut C| {
        let pks = BookRef::cqrs_pks(conn, None, 1000).unwrap();
        pks.iter()
            .filter(|pk| (offset..offset + 100).contains(*pk))
            .map(|pk| BookRef::cqrs_get(conn, pk).unwrap().unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (rows(sequential), rows(batched));
    assert!(!a.is_empty());
    assert_eq!(a, b, "same rows");
    for pk in (1 + offset)..=(25 + offset) {
        assert_eq!(
            sequential.tombstone_get("book", &pk.to_string()).unwrap(),
            batched.tombstone_get("book", &pk.to_string()).unwrap(),
            "same tombstone for {pk}"
        );
    }
}

/// One message per row per transaction (django-cqrs's rule): inside `cqrs_core::transaction`
/// a row written many times sends one message with its final state, its revision bumped
/// once; a nested transaction that fails forgets its rows; outside a transaction every write
/// sends. The replica applies each message with no gap.
pub fn one_message_per_transaction<C>(master: &mut C, replica: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
{
    let revisions = |out: &[(String, Value)]| -> Vec<(i64, i64, String)> {
        out.iter()
            .map(|(_, m)| {
                (
                    m["instance_pk"].as_i64().unwrap(),
                    m["instance_data"]["cqrs_revision"].as_i64().unwrap(),
                    m["instance_data"]["title"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    };
    clear_outbox(master);
    // a create and three updates in one transaction: one message, revision 0, the last title
    cqrs_core::transaction(master, |conn| {
        Book::new(1, "Dune").cqrs_insert(conn)?;
        for title in ["Dune I", "Dune II", "Dune III"] {
            Book::cqrs_update(conn, &1, |b| title.clone_into(&mut b.title))?;
        }
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    let out = outbox(master);
    assert_eq!(revisions(&out), [(1, 0, "Dune III".to_owned())]);
    assert_eq!(
        out[0].1["previous_data"],
        json!({"title": null}),
        "the create's tracked values"
    );
    let mut broker = MemoryBroker::new();
    broker.relay(master).unwrap();
    // ten updates of an existing row, through three hooks: one message, revision + 1
    cqrs_core::transaction(master, |conn| {
        for n in 0..4 {
            Book::cqrs_update(conn, &1, |b| b.title = format!("update {n}"))?;
        }
        let mut row = Book::db_get(conn, &1, false)?.unwrap();
        for n in 4..7 {
            row.title = format!("update {n}");
            row = row.cqrs_save(conn)?;
        }
        for n in 7..10 {
            row.title = format!("update {n}");
            row = row.cqrs_save_fields(conn, &["title"], Some(true))?;
        }
        assert_eq!(row.cqrs_revision, 1, "bumped once");
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    let out = outbox(master);
    assert_eq!(revisions(&out), [(1, 1, "update 9".to_owned())]);
    assert_eq!(
        out[0].1["previous_data"],
        json!({"title": "Dune III"}),
        "the title before the transaction"
    );
    broker.relay(master).unwrap();
    // a nested transaction that fails: its first write is forgotten with its savepoint, so
    // the next write sends (and bumps) anew
    cqrs_core::transaction(master, |conn| {
        let failed: Result<(), cqrs_core::Error> = cqrs_core::transaction(conn, |conn| {
            Book::new(2, "Solaris").cqrs_insert(conn)?;
            Err(cqrs_core::Error::NotFound {
                model: "test",
                pk: "rollback".into(),
            })
        });
        assert!(failed.is_err());
        Book::new(2, "Solaris").cqrs_insert(conn)?;
        Book::cqrs_update(conn, &2, |b| b.title = "Solaris (2nd ed.)".into())?;
        // a delete after an update: the update's message stays, the delete follows
        Book::cqrs_update(conn, &1, |b| b.title = "last".into())?;
        Book::cqrs_delete_pk(conn, &1)?;
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    let out = outbox(master);
    assert_eq!(
        revisions(&out),
        [
            (2, 0, "Solaris (2nd ed.)".to_owned()),
            (1, 2, "last".to_owned()),
            (1, 3, String::new())
        ],
        "{out:?}"
    );
    broker.relay(master).unwrap();
    // outside a transaction every write sends
    Book::cqrs_update(master, &2, |b| b.title = "a".into()).unwrap();
    Book::cqrs_update(master, &2, |b| b.title = "b".into()).unwrap();
    assert_eq!(
        revisions(&outbox(master)),
        [(2, 1, "a".to_owned()), (2, 2, "b".to_owned())]
    );
    broker.relay(master).unwrap();
    // the replica applies them all, each revision one above the last: no gap
    let outcomes = broker.deliver(replica, "replica").unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert!(BookRef::cqrs_get(replica, &1).unwrap().is_none());
    let two = BookRef::cqrs_get(replica, &2).unwrap().unwrap();
    assert_eq!((two.name.as_str(), two.cqrs_revision), ("b", 2));
}

/// Related data in a custom serializer (django-cqrs's `relate_cqrs_serialization` and
/// `bulk_relate_cqrs_serialization`): the reviewed book's title, read through the connection
/// in the write's transaction, one query per write and one per page of the bulk paths.
pub fn related_data<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    Review: MasterStore<C>,
{
    let review = |id: i64, book_id: i32| Review {
        review_id: id,
        book_id,
        stars: 4,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    };
    let titles = |out: &[(String, Value)]| -> Vec<(i64, Value)> {
        out.iter()
            .map(|(_, m)| {
                (
                    m["instance_pk"].as_i64().unwrap(),
                    m["instance_data"]["book_title"].clone(),
                )
            })
            .collect()
    };
    for (id, title) in [(1, "Solaris"), (2, "Eden"), (3, "Fiasco")] {
        Book::new(id, title).cqrs_insert(master).unwrap();
    }
    clear_outbox(master);

    // one write, one query; a book that does not exist is `null`
    let queries = Review::title_queries();
    review(1, 1).cqrs_insert(master).unwrap();
    review(2, 99).cqrs_insert(master).unwrap();
    assert_eq!(Review::title_queries() - queries, 2);
    assert_eq!(
        titles(&outbox(master)),
        [(1, json!("Solaris")), (2, Value::Null)]
    );
    clear_outbox(master);

    // a bulk insert of 5 rows: one query
    let queries = Review::title_queries();
    Review::cqrs_bulk_insert(master, (10..15).map(|i| review(i, 2)).collect()).unwrap();
    assert_eq!(Review::title_queries() - queries, 1);
    assert!(titles(&outbox(master)).iter().all(|(_, t)| t == "Eden"));
    clear_outbox(master);

    // the related rows as the transaction sees them: a rename earlier in it is in the message
    cqrs_core::transaction(master, |conn| {
        Book::cqrs_update(conn, &1, |b| b.title = "Solaris (2nd ed.)".into())?;
        Review::cqrs_update(conn, &1, |r| r.stars = 5)?;
        Review::cqrs_update(conn, &1, |r| r.stars = 3)?; // folds into the first message
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    let out = outbox(master);
    let reviews: Vec<_> = out.iter().filter(|(id, _)| id == "review").collect();
    assert_eq!(reviews.len(), 1, "one message per row per transaction");
    assert_eq!(
        reviews[0].1["instance_data"]["book_title"],
        "Solaris (2nd ed.)"
    );
    assert_eq!(reviews[0].1["instance_data"]["stars"], 3);
    clear_outbox(master);

    // a bulk update of 7 rows: one query
    let queries = Review::title_queries();
    let updated = Review::cqrs_bulk_update_filtered(master, Vec::new(), |r| r.stars = 1).unwrap();
    assert_eq!((updated.len(), Review::title_queries() - queries), (7, 1));
    assert_eq!(outbox(master).len(), 7);
    clear_outbox(master);

    // SYNC by pages of 3 over 7 rows: one query per page
    let queries = Review::title_queries();
    let sent = Review::cqrs_sync_where(master, &[], SyncTarget::Broadcast, 3, &mut |_| {}).unwrap();
    assert_eq!((sent, Review::title_queries() - queries), (7, 3));
    // selected rows: one query for them all
    let queries = Review::title_queries();
    let report =
        Review::cqrs_sync_selected(master, &[1, 2, 10, 404], SyncTarget::Broadcast).unwrap();
    assert_eq!(report.synced.len(), 3);
    assert_eq!(Review::title_queries() - queries, 1);
    clear_outbox(master);

    // bulk-dump: one query per page, every row with its title
    let ops = registry::master::<C>("review").unwrap().ops;
    let queries = Review::title_queries();
    let mut dumped = Vec::new();
    ops.dump(master, 4, &mut |data| {
        dumped.push(data?);
        Ok(())
    })
    .unwrap();
    assert_eq!((dumped.len(), Review::title_queries() - queries), (7, 2));
    assert_eq!(dumped[0]["book_title"], "Solaris (2nd ed.)");

    // `relate` failing: the write rolls back with the error and its source; nothing is sent
    let error = review(20, -1).cqrs_insert(master).unwrap_err();
    assert!(
        matches!(error, cqrs_core::Error::Relate { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("Review: cannot load the related data of the rows"),
        "{error}"
    );
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("never negative"), "{source}");
    assert!(Review::db_get(master, &20, false).unwrap().is_none());
    assert!(outbox(master).is_empty());
}

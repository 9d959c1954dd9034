//! Fixtures for documentation examples: `cqrs_core::__doc_fixtures!()` declares, in the
//! calling crate, a `books` master table with model `Book`, a `book_refs` replica table with
//! model `BookRef`, and `connection()`, an in-memory SQLite database holding both.

/// Declares the documentation fixtures (see the module docs). Needs the `sqlite` and `derive`
/// features.
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_fixtures {
    () => {
        $crate::__private::diesel::table! {
            books (id) {
                id -> Integer,
                title -> Text,
                price -> Double,
                cqrs_revision -> Integer,
                cqrs_updated -> TimestamptzSqlite,
            }
        }

        $crate::__private::diesel::table! {
            book_refs (id) {
                id -> Integer,
                title -> Text,
                price -> Double,
                cqrs_revision -> Integer,
                cqrs_updated -> TimestamptzSqlite,
            }
        }

        #[derive(Debug, Clone, PartialEq, $crate::CqrsMaster)]
        #[diesel(table_name = books)]
        #[cqrs(cqrs_id = "book", tracked_fields(title), backends(sqlite))]
        pub struct Book {
            pub id: i32,
            pub title: String,
            pub price: f64,
            pub cqrs_revision: i32,
            pub cqrs_updated: $crate::__private::chrono::DateTime<$crate::__private::chrono::Utc>,
        }

        impl Book {
            /// A book with this id.
            pub fn sample(id: i32) -> Self {
                Book {
                    id,
                    title: format!("Book {id}"),
                    price: 9.99,
                    cqrs_revision: 0,
                    cqrs_updated: $crate::__private::chrono::Utc::now(),
                }
            }
        }

        #[derive(Debug, Clone, PartialEq, $crate::CqrsReplica)]
        #[diesel(table_name = book_refs)]
        #[cqrs(cqrs_id = "book", backends(sqlite))]
        pub struct BookRef {
            pub id: i32,
            pub title: String,
            pub price: f64,
            pub cqrs_revision: i32,
            pub cqrs_updated: $crate::__private::chrono::DateTime<$crate::__private::chrono::Utc>,
        }

        /// An in-memory database with the framework's tables and both fixture tables.
        pub fn connection() -> $crate::__private::SqliteConnection {
            use $crate::__private::diesel::connection::SimpleConnection as _;
            use $crate::db::CqrsConnection as _;
            let mut conn = <$crate::__private::SqliteConnection as $crate::db::CqrsConnection>::cqrs_connect(":memory:")
                .expect("in-memory SQLite");
            conn.cqrs_setup().expect("setup");
            conn.batch_execute(
                "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price DOUBLE NOT NULL,
                    cqrs_revision INTEGER NOT NULL, cqrs_updated TEXT NOT NULL);
                 CREATE TABLE book_refs (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price DOUBLE NOT NULL,
                    cqrs_revision INTEGER NOT NULL, cqrs_updated TEXT NOT NULL);",
            )
            .expect("fixture tables");
            conn
        }
    };
}

//! Which backend a database URL names, and the one way to open a connection from a URL:
//! [`with_connection!`](crate::with_connection) (or [`with_backend!`](crate::with_backend)
//! for the connection type alone), compiled once per enabled backend.

use crate::error::Error;

/// A database backend the framework supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (feature `sqlite`): a file path, `sqlite://path` or `:memory:`.
    Sqlite,
    /// PostgreSQL (feature `postgres`): `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The backend a URL names: `postgres://` or `postgresql://` for PostgreSQL; a file path,
    /// `sqlite://path`, `sqlite:path` or `:memory:` for SQLite. An empty URL, or one with any
    /// other scheme (`mysql://`, a typo like `postgress://`), is an error rather than a SQLite
    /// file named after it; the error never repeats the URL, which may hold a password.
    ///
    /// ```
    /// use cqrs_core::db::Backend;
    /// assert_eq!(Backend::of_url("postgres://app@db/catalogue")?, Backend::Postgres);
    /// assert_eq!(Backend::of_url("catalogue.sqlite3")?, Backend::Sqlite);
    /// assert!(Backend::of_url("mysql://u:pw@h/db").is_err());
    /// assert!(Backend::of_url("  ").is_err());
    /// # Ok::<_, cqrs_core::Error>(())
    /// ```
    pub fn of_url(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::BadDatabaseUrl {
                reason: "the URL is empty".to_owned(),
            });
        }
        match url.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Self::Postgres),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite),
            Some(("sqlite", _)) => Err(Error::BadDatabaseUrl {
                reason: "`sqlite://` names no file".to_owned(),
            }),
            Some((scheme, _)) => Err(Error::BadDatabaseUrl {
                reason: format!(
                    "unknown scheme `{}`; expected postgres://, postgresql://, sqlite:// or a \
                     SQLite file path",
                    scheme.chars().take(20).collect::<String>()
                ),
            }),
            None => Ok(Self::Sqlite),
        }
    }

    /// The backend's name, as in `backends(...)` and the logs: `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(self) -> bool {
        self == Self::Postgres
    }

    /// Whether this binary was built with the backend's feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Postgres => cfg!(feature = "postgres"),
        }
    }

    /// The error for a URL of a backend this binary was built without.
    pub fn not_compiled(self) -> Error {
        let (backend, feature, example) = match self {
            Self::Sqlite => ("SQLite", "sqlite", "`service.sqlite3`"),
            Self::Postgres => ("PostgreSQL", "postgres", "`postgres://user@host/db`"),
        };
        Error::BackendNotCompiled {
            backend,
            feature,
            example,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `sqlite` or `postgres`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            other => Err(format!(
                "unknown backend `{other}`; expected `sqlite` or `postgres`"
            )),
        }
    }
}

/// Runs `$body` with `$conn` bound to a `&mut` connection to `$url`, of the backend the URL
/// names (see [`Backend::of_url`]). The body is compiled once per enabled backend; a bad URL
/// returns [`Error::BadDatabaseUrl`], and a URL of a backend the binary lacks
/// [`Error::BackendNotCompiled`], from the enclosing function
/// (whose error type must convert from [`crate::Error`]).
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # fn main() -> Result<(), cqrs_core::Error> {
/// use cqrs_core::db::{CqrsConnection, OutboxReader};
/// let pending = cqrs_core::with_connection!(":memory:", |conn| {
///     conn.cqrs_setup()?;
///     conn.outbox_pending()?
/// });
/// assert_eq!(pending, 0);
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
#[macro_export]
macro_rules! with_connection {
    ($url:expr, |$conn:ident| $body:expr) => {{
        let __cqrs_url: &str = $url;
        $crate::with_backend!(__cqrs_url, |__CqrsConnection| {
            let mut __cqrs_connection =
                <__CqrsConnection as $crate::db::CqrsConnection>::cqrs_connect(__cqrs_url)?;
            let $conn = &mut __cqrs_connection;
            $body
        })
    }};
}

/// Runs `$body` with the type alias `$conn` naming the connection type of the backend `$url`
/// names; like [`with_connection!`](crate::with_connection), without opening a connection.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # fn main() -> Result<(), cqrs_core::Error> {
/// use cqrs_core::db::CqrsConnection;
/// let name = cqrs_core::with_backend!("catalogue.sqlite3", |Conn| Conn::BACKEND);
/// assert_eq!(name, "sqlite");
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
#[macro_export]
macro_rules! with_backend {
    ($url:expr, |$conn:ident| $body:expr) => {
        match $crate::db::Backend::of_url($url)? {
            $crate::db::Backend::Sqlite => $crate::__private::if_sqlite!(
                {
                    #[allow(dead_code)]
                    type $conn = $crate::__private::SqliteConnection;
                    $body
                },
                {
                    return ::core::result::Result::Err(::core::convert::From::from(
                        $crate::db::Backend::Sqlite.not_compiled(),
                    ));
                }
            ),
            $crate::db::Backend::Postgres => $crate::__private::if_postgres!(
                {
                    #[allow(dead_code)]
                    type $conn = $crate::__private::PgConnection;
                    $body
                },
                {
                    return ::core::result::Result::Err(::core::convert::From::from(
                        $crate::db::Backend::Postgres.not_compiled(),
                    ));
                }
            ),
        }
    };
}

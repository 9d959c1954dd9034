//! Shared pieces of the two example services (`catalogue`, the master, and `recommendations`,
//! the replica) and of the `demo` scenario driver.
//!
//! Each service keeps its models in its own binary: a binary registers exactly the models it
//! owns.
#![allow(
    clippy::format_collect,
    reason = "page and report text built once per request"
)]

use std::time::Duration;

use anyhow::Context;

/// Creates a service's tables (and the framework's) if they do not exist. A SQLite file in a
/// directory that does not exist is an error (a typo must not create directories), unless
/// `CQRS_CREATE_DIRS=1` asks for it.
pub fn migrate(url: &str, sqlite_ddl: &str, postgres_ddl: &str) -> anyhow::Result<()> {
    use cqrs_core::db::CqrsConnection;
    use diesel::connection::SimpleConnection;
    if let Some(parent) = std::path::Path::new(cqrs_core::db::sqlite::path_of(url)).parent()
        && !cqrs_core::db::Backend::of_url(url)?.is_postgres()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        if std::env::var("CQRS_CREATE_DIRS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        } else {
            anyhow::bail!(
                "the directory of the SQLite database {} does not exist (create it, or set CQRS_CREATE_DIRS=1)",
                parent.display()
            );
        }
    }
    cqrs_core::with_connection!(url, |conn| {
        conn.cqrs_setup()?;
        let ddl = if cqrs_core::db::Backend::of_url(url)?.is_postgres() {
            postgres_ddl
        } else {
            sqlite_ddl
        };
        conn.batch_execute(ddl)
            .context("cannot create the tables")?;
        Ok(())
    })
}

/// Deletes every row of these tables (in this order).
pub fn empty_tables(url: &str, tables: &[&str]) -> anyhow::Result<()> {
    use diesel::connection::SimpleConnection;
    let sql: String = tables.iter().map(|t| format!("DELETE FROM {t};")).collect();
    cqrs_core::with_connection!(url, |conn| {
        conn.batch_execute(&sql)
            .context("cannot empty the tables")?;
        Ok(())
    })
}

/// Initialises logs on stderr (RUST_LOG, default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(cqrs_rabbit::cli::colour())
        .try_init();
}

/// Resolves on SIGINT or SIGTERM: what a service's graceful shutdown waits for.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            if let Some(term) = term.as_mut() {
                term.recv().await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {}
    }
}

/// A page's or API's catch-all error: HTTP 500 with the error's chain.
#[derive(Debug)]
pub struct ServerError(pub anyhow::Error);

impl axum::response::IntoResponse for ServerError {
    fn into_response(self) -> axum::response::Response {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{:#}", self.0),
        )
            .into_response()
    }
}

impl<E: Into<anyhow::Error>> From<E> for ServerError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// A free TCP port on 127.0.0.1 (for the demo and the tests).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process that is sent SIGTERM, and waited for, when dropped.
#[derive(Debug)]
pub struct Service(pub std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Escapes text for HTML.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain HTML page.
pub fn page(title: &str, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}th{{background:#f4f4f4}}\
         form.inline{{display:inline}}input{{margin:.1em}}.muted{{color:#888}}</style></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = esc(title)
    )
}

/// A small blocking HTTP client for the demo and the tests.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `http://127.0.0.1:<port>`.
    pub fn new(port: u16) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            base: format!("http://127.0.0.1:{port}"),
            agent,
        }
    }

    /// GET a JSON document.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call()?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET {path}: HTTP {status}");
        Ok(response.body_mut().read_json()?)
    }

    /// GET a page's text.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call()?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET {path}: HTTP {status}");
        Ok(response.body_mut().read_to_string()?)
    }

    /// Sends JSON with `method`; returns the JSON answer (or null).
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "POST" => self.agent.post(&url).send_json(body)?,
            "PUT" => self.agent.put(&url).send_json(body)?,
            "DELETE" => self.agent.delete(&url).call()?,
            other => anyhow::bail!("unsupported method {other}"),
        };
        let status = response.status();
        let text = response.body_mut().read_to_string()?;
        anyhow::ensure!(
            status.is_success(),
            "{method} {path}: HTTP {status}: {text}"
        );
        Ok(if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Waits until the service answers.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            if self.get_text("/health").is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < timeout,
                "{} did not answer within {timeout:?}",
                self.base
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Serializes a value for JSON answers (decimals as numbers, like the wire format).
pub fn json_decimal(value: Option<&bigdecimal::BigDecimal>) -> serde_json::Value {
    value.map_or(serde_json::Value::Null, |d| {
        cqrs_core::value::CqrsValue::to_cqrs(d)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_directory_is_not_created_unasked() {
        let err = super::migrate("/nonexistent-cqrs-dir/x.sqlite3", "", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!std::path::Path::new("/nonexistent-cqrs-dir").exists());
        let err = super::migrate("mysql://u:pw@h/db", "", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scheme"), "{err}");
    }
}

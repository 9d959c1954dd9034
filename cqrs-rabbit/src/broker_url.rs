//! The broker URL, parsed and checked, that never shows its password.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// A broker URL. Its `Display` and the errors built from it never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    raw: String,
    password: Option<String>,
    host: String,
    port: u16,
    vhost: String,
    tls: bool,
}

impl BrokerUrl {
    /// `amqp://localhost:5672/%2f`, built without parsing.
    pub(crate) fn localhost() -> Self {
        Self {
            raw: "amqp://localhost:5672/%2f".to_owned(),
            password: None,
            host: "localhost".to_owned(),
            port: 5672,
            vhost: "/".to_owned(),
            tls: false,
        }
    }

    /// Parses and checks an `amqp://` or `amqps://` URL.
    pub fn parse(raw: &str) -> Result<Self> {
        const SETTING: &str = "CQRS_BROKER_URL";
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            Error::config(
                SETTING,
                format!("not a URL ({e}); expected amqp://user:password@host:5672/vhost"),
            )
        })?;
        let tls = match url.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(Error::config(
                    SETTING,
                    format!("scheme `{other}` is not supported; use amqp:// or amqps://"),
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::config(SETTING, "the URL has no host"))?
            .to_owned();
        let port = url.port().unwrap_or(if tls { 5671 } else { 5672 });
        let vhost = match url.path() {
            "" => "/".to_owned(),
            path => percent_decode_str(&path[1..])
                .decode_utf8_lossy()
                .into_owned(),
        };
        let password = url
            .password()
            .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned())
            .filter(|p| !p.is_empty());
        Ok(Self {
            raw: raw.trim().to_owned(),
            password,
            host,
            port,
            vhost,
            tls,
        })
    }

    /// Builds a URL from its parts (the vhost is percent-encoded).
    pub fn from_parts(
        tls: bool,
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        vhost: &str,
    ) -> Result<Self> {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let scheme = if tls { "amqps" } else { "amqp" };
        Self::parse(&format!(
            "{scheme}://{}:{}@{host}:{port}/{}",
            enc(user),
            enc(password),
            enc(vhost)
        ))
    }

    /// The URL to hand to the AMQP client (with the password).
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The virtual host (decoded).
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// Whether the connection uses TLS (`amqps`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// A lapin error of `action` on this broker, its message without the password.
    pub(crate) fn error(&self, action: impl Into<String>, source: lapin::Error) -> Error {
        Error::Broker {
            url: self.to_string(),
            action: action.into(),
            detail: self.redact(&source.to_string()),
            source: Box::new(source),
        }
    }

    /// Replaces the password in `text` (an error message, say) by `****`.
    pub fn redact(&self, text: &str) -> String {
        match &self.password {
            Some(password) if password.len() >= 2 => text.replace(password.as_str(), "****"),
            _ => text.to_owned(),
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("****"));
                }
                f.write_str(url.as_str())
            }
            Err(_) => f.write_str("(invalid URL)"),
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

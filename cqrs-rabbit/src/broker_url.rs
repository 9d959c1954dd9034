//! The broker URL, parsed and checked, that never shows its password; for a RabbitMQ cluster,
//! several nodes' URLs, comma-separated.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// A broker URL. Its `Display` and the errors built from it never show the password.
///
/// `amqp://u:p@node1:5672/%2f,amqp://u:p@node2:5672/%2f` names the nodes of a cluster: a
/// connection goes to the node that last answered, else to the next one that does.
///
/// ```
/// let url = cqrs_rabbit::BrokerUrl::parse(
///     "amqp://app:secret@10.0.0.1:5672/%2f,amqp://app:secret@10.0.0.2:5672/%2f",
/// )?;
/// assert_eq!(url.nodes().count(), 2);
/// assert_eq!(url.to_string(), "amqp://app:****@10.0.0.1:5672/%2f,amqp://app:****@10.0.0.2:5672/%2f");
/// # Ok::<(), cqrs_rabbit::Error>(())
/// ```
#[derive(Clone)]
pub struct BrokerUrl {
    raw: String,
    password: Option<String>,
    host: String,
    port: u16,
    vhost: String,
    tls: bool,
    /// A cluster's nodes, this one first, each a URL of one node; empty for one broker.
    others: Vec<BrokerUrl>,
    /// Which node answered last (an index into [`BrokerUrl::nodes`]), shared by the clones.
    preferred: Arc<AtomicUsize>,
}

impl PartialEq for BrokerUrl {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.others == other.others
    }
}

impl Eq for BrokerUrl {}

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
            others: Vec::new(),
            preferred: Arc::default(),
        }
    }

    /// Parses and checks an `amqp://` or `amqps://` URL, or several, comma-separated: the
    /// nodes of a cluster.
    pub fn parse(raw: &str) -> Result<Self> {
        if !raw.contains(',') {
            return Self::parse_one(raw);
        }
        let mut nodes = Vec::new();
        for node in raw.split(',').map(str::trim) {
            if node.is_empty() {
                return Err(Error::config(
                    "CQRS_BROKER_URL",
                    "an empty node in the comma-separated list",
                ));
            }
            nodes.push(Self::parse_one(node)?);
        }
        let mut first = nodes
            .first()
            .cloned()
            .ok_or_else(|| Error::config("CQRS_BROKER_URL", "names no node"))?;
        first.others = nodes;
        Ok(first)
    }

    fn parse_one(raw: &str) -> Result<Self> {
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
            others: Vec::new(),
            preferred: Arc::default(),
        })
    }

    /// Every node, the first one first (one for a single broker). Each is a URL of one node.
    pub fn nodes(&self) -> impl Iterator<Item = &BrokerUrl> {
        let single = self.others.is_empty().then_some(self);
        single.into_iter().chain(&self.others)
    }

    /// The index (in [`BrokerUrl::nodes`]) of the node that answered last.
    pub(crate) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.others.len().max(1)
    }

    /// Remembers the node that answered.
    pub(crate) fn set_preferred(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
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

    /// The URL of the first node to hand to the AMQP client (with the password).
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

    /// Replaces the password (of every node) in `text` (an error message, say) by `****`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for node in self.nodes() {
            if let Some(password) = &node.password
                && password.len() >= 2
            {
                text = text.replace(password.as_str(), "****");
            }
        }
        text
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, node) in self.nodes().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match url::Url::parse(&node.raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("****"));
                    }
                    f.write_str(url.as_str())?;
                }
                Err(_) => f.write_str("(invalid URL)")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerUrl;

    #[test]
    fn a_cluster_is_its_nodes_comma_separated() {
        let url = BrokerUrl::parse(
            " amqp://u:secret@n1:5672/%2f , amqp://u:other@n2:5673/%2f,amqps://u:secret@n3/v",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let nodes: Vec<(&str, u16, bool)> =
            url.nodes().map(|n| (n.host(), n.port(), n.tls())).collect();
        assert_eq!(
            nodes,
            [("n1", 5672, false), ("n2", 5673, false), ("n3", 5671, true)]
        );
        assert_eq!(url.host(), "n1");
        let shown = url.to_string();
        assert!(
            !shown.contains("secret") && !shown.contains("other"),
            "{shown}"
        );
        assert_eq!(url.redact("bad secret, bad other"), "bad ****, bad ****");
        // each node on its own shows only itself
        assert_eq!(
            url.nodes().nth(1).map(ToString::to_string).as_deref(),
            Some("amqp://u:****@n2:5673/%2f")
        );
        // one broker is one node
        assert_eq!(
            BrokerUrl::parse("amqp://localhost")
                .map(|u| u.nodes().count())
                .ok(),
            Some(1)
        );
    }

    #[test]
    fn a_bad_node_is_a_clear_error() {
        for bad in [
            "amqp://n1,,amqp://n2",
            "amqp://n1,",
            "amqp://n1,http://n2",
            "amqp://n1,nonsense",
        ] {
            let error = BrokerUrl::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("CQRS_BROKER_URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_preferred_node_is_shared_by_clones() {
        let url =
            BrokerUrl::parse("amqp://n1,amqp://n2,amqp://n3").unwrap_or_else(|e| panic!("{e}"));
        let clone = url.clone();
        clone.set_preferred(2);
        assert_eq!(url.preferred(), 2);
        assert_eq!(url, clone);
    }
}

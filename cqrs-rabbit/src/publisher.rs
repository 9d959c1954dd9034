//! Commands and calls sent at once, not through the outbox (the Python package's
//! `send_command` / `send_call` without a transaction): for a caller with no database write
//! to commit them with. Each send waits for the broker's publisher confirm, so an `Ok` means
//! the broker holds the message; an error means it may not, and the caller decides whether to
//! retry. Prefer [`cqrs_core::event::send_command`] when the command follows a database
//! write: the outbox then sends it exactly when the write commits.

use std::collections::HashSet;

use lapin::{Channel, Connection};
use serde::Serialize;
use tokio::sync::Mutex;

use cqrs_core::event::{self, Expiry, Outgoing};

use crate::broker::{self, Confirmed};
use crate::error::Result;
use crate::{Config, topology};

/// A connection for immediate commands and calls.
///
/// ```no_run
/// # async fn run() -> cqrs_rabbit::Result<()> {
/// use cqrs_core::event::Expiry;
/// let publisher = cqrs_rabbit::Publisher::connect(cqrs_rabbit::Config::from_env()?).await?;
/// let id = publisher
///     .send_command("notifications", "send_sms",
///         &serde_json::json!({"phone_number": "+100", "text": "hello"}),
///         Expiry::After(std::time::Duration::from_secs(60)))
///     .await?;
/// # let _ = id; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Publisher {
    config: Config,
    connection: Connection,
    channel: Channel,
    declared: Mutex<HashSet<String>>,
}

impl Publisher {
    /// Connects to the broker `config` names, with publisher confirms.
    pub async fn connect(config: Config) -> Result<Self> {
        let connection = broker::connect(&config.url, "cqrs-publisher").await?;
        let channel = broker::confirm_channel(&connection, &config.url).await?;
        Ok(Self {
            config,
            connection,
            channel,
            declared: Mutex::new(HashSet::new()),
        })
    }

    /// Sends a command to `service` now; returns its id once the broker confirmed it.
    pub async fn send_command(
        &self,
        service: &str,
        command_name: &str,
        arguments: &impl Serialize,
        expiry: Expiry,
    ) -> Result<String> {
        let message = event::command(service, command_name, arguments, expiry)
            .map_err(cqrs_core::Error::from)?;
        self.send(message).await
    }

    /// Calls `method` of `service` now (the answer comes to `reply_to`); returns the call id
    /// once the broker confirmed it.
    pub async fn send_call(
        &self,
        service: &str,
        method: &str,
        data: &impl Serialize,
        reply_to: &str,
        expiry: Expiry,
    ) -> Result<String> {
        let message =
            event::call(service, method, data, reply_to, expiry).map_err(cqrs_core::Error::from)?;
        self.send(message).await
    }

    /// Publishes a built message to its exchange (declared the first time) and waits for the
    /// confirm. Not mandatory, as the Python package publishes: a service with no queue bound
    /// yet is not an error.
    pub async fn send(&self, message: Outgoing) -> Result<String> {
        {
            let mut declared = self.declared.lock().await;
            if !declared.contains(&message.exchange) {
                topology::declare_event_exchange(&self.channel, &self.config, &message.exchange)
                    .await?;
                declared.insert(message.exchange.clone());
            }
        }
        let confirm = broker::publish_with(
            &self.channel,
            &message.exchange,
            &message.routing_key,
            message.body.as_bytes(),
            broker::record_properties(&message.properties),
            false,
        )
        .await?;
        match broker::confirmed(confirm, &message.routing_key).await? {
            Confirmed::Routed | Confirmed::Unroutable => Ok(message.id),
            Confirmed::Refused => Err(broker::refused(&message.routing_key)),
        }
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<()> {
        self.connection
            .close(200, "bye".into())
            .await
            .map_err(|e| self.config.url.error("close", e))
    }
}

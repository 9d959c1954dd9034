//! `LISTEN cqrs_outbox` on PostgreSQL: the outbox's inserts notify at every commit that wrote
//! messages, from any process, so the relay wakes at once instead of polling.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::backoff::Backoff;
use crate::notices::Notices;

/// Listens until the task is aborted, reconnecting with backoff; each notification goes to
/// `notices` (which wakes the relay).
pub(crate) async fn listen(url: String, notices: Arc<Notices>) {
    let mut backoff = Backoff::default();
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {}", cqrs_core::db::postgres::NOTIFY_CHANNEL);
                let listen = client.batch_execute(&statement);
                tokio::pin!(listen);
                // Drive the connection while LISTEN runs, then forward notifications.
                let mut listening = false;
                loop {
                    tokio::select! {
                        result = &mut listen, if !listening => {
                            if let Err(error) = result {
                                tracing::warn!(%error, "relay: LISTEN failed; polling instead");
                                break;
                            }
                            listening = true;
                            notices.set_listening(true);
                            // what was committed while nobody listened: one look
                            notices.received("");
                            backoff.reset();
                            tracing::debug!("relay: listening for outbox notifications");
                        }
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(n))) => notices.received(n.payload()),
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(%error, "relay: notification connection lost");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "relay: cannot LISTEN; polling until it can"),
        }
        // a commit may go unannounced until the LISTEN is back: the relay takes this
        // process's wakes again (and looks once, in case it missed one)
        notices.set_listening(false);
        notices.received("");
        backoff.wait().await;
    }
}

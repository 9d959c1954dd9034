//! The test service (`cqrs-test-service`: the test models behind the operations CLI) started
//! as a process of its own: relays, consumers and masters to run side by side or to kill.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};

/// The test service's binary.
pub const SERVICE: &str = env!("CARGO_BIN_EXE_cqrs-test-service");

/// A child process, SIGKILLed when dropped.
pub struct Killable(pub Child);

impl Drop for Killable {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cqrs-test-service COMMAND` on `database` with `config`'s broker, exchange and queue (2
/// workers, batches of 100), plus `env`.
pub fn spawn(
    config: &cqrs_rabbit::Config,
    command: &str,
    database: &str,
    env: &[(&str, &str)],
) -> Killable {
    Killable(
        Command::new(SERVICE)
            .arg(command)
            .env("DATABASE_URL", database)
            .env("CQRS_BROKER_URL", config.url.expose())
            .env("CQRS_EXCHANGE", &config.exchange)
            .env("CQRS_QUEUE", config.queue.as_ref().unwrap())
            .env("CQRS_WORKERS", "2")
            .env("CQRS_BATCH_SIZE", "100")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

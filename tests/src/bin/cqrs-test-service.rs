//! A service with the test models and the operations CLI: what the integration tests start as
//! a separate process (consumers to kill, relays, the tools). `churn FIRST LAST OPERATIONS
//! SEED` (test-only) runs [`cqrs_tests::writer::churn`] on `DATABASE_URL` as a master process
//! of its own and prints what it did.
#![allow(
    clippy::print_stdout,
    reason = "a test binary's output is its interface"
)]
use std::process::ExitCode;

fn main() -> ExitCode {
    cqrs_tests::link_models();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("churn") {
        return churn(&args[2..]);
    }
    cqrs_rabbit::cli::main_with("test-service.sqlite3")
}

fn churn(args: &[String]) -> ExitCode {
    let [first, last, operations, seed] = args else {
        eprintln!("usage: cqrs-test-service churn FIRST LAST OPERATIONS SEED");
        return ExitCode::from(2);
    };
    let (Ok(first), Ok(last), Ok(operations), Ok(seed)) = (
        first.parse(),
        last.parse(),
        operations.parse(),
        seed.parse(),
    ) else {
        eprintln!("churn: FIRST and LAST are keys, OPERATIONS and SEED numbers");
        return ExitCode::from(2);
    };
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("churn: DATABASE_URL is not set");
        return ExitCode::from(2);
    };
    let run = || -> Result<_, cqrs_core::Error> {
        cqrs_core::with_connection!(&url, |conn| {
            Ok(cqrs_tests::writer::churn(
                conn, first, last, operations, seed,
            ))
        })
    };
    match run() {
        Ok(churned) => {
            println!("{} {}", churned.done, churned.lost);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("churn: {error}");
            ExitCode::FAILURE
        }
    }
}

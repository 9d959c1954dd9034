//! `cqrs-bench-fleet`: the operations CLI of a service with 50 models (`fleet.rs`), for the
//! "models" dimension of `scripts/bench --scale`, plus two commands of its own:
//! `setup URL` (the framework's and the fleet's tables) and `fill URL MODELS MESSAGES` (creates
//! spread over the first MODELS models).
#![allow(clippy::print_stderr, reason = "a benchmark tool reports its errors")]
#![allow(unreachable_pub, reason = "a binary")]

#[path = "../fleet.rs"]
mod fleet;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("setup") => args
            .get(2)
            .ok_or_else(|| anyhow::anyhow!("usage: cqrs-bench-fleet setup URL"))
            .and_then(|url| fleet::setup(url)),
        Some("fill") => fill(&args[2..]),
        _ => return cqrs_rabbit::cli::main_with("fleet.sqlite3"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cqrs-bench-fleet: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn fill(args: &[String]) -> anyhow::Result<()> {
    let [url, models, messages] = args else {
        anyhow::bail!("usage: cqrs-bench-fleet fill URL MODELS MESSAGES");
    };
    fleet::fill(url, models.parse()?, messages.parse()?)
}

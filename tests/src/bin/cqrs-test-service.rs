//! A service with the test models and the operations CLI: what the integration tests start as
//! a separate process (consumers to kill, relays, the tools).
fn main() -> std::process::ExitCode {
    cqrs_tests::link_models();
    cqrs_rabbit::cli::main_with("test-service.sqlite3")
}

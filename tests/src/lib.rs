//! Test support of the workspace: models shared by the integration tests and by the
//! `cqrs-test-service` binary, which the tests start as a separate process.
pub mod handlers;
pub mod models;
pub mod writer;

/// Call from a binary so that the linker keeps the models' registrations.
pub fn link_models() {
    let _ = <models::Book as cqrs_core::MasterModel>::CQRS_ID;
    let _ = <handlers::Greeting as cqrs_core::event::DomainEvent>::AGGREGATE;
}

/// The README's Rust examples, compiled as doctests (`cargo test -p cqrs-tests --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

//! Compile-time tests of the derives: every misuse is an error on the user's tokens
//! (re-bless with `TRYBUILD=overwrite cargo test -p cqrs-tests --test ui`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

//! Parsing and checking of the derive input (serde_derive's `internals`).

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod check;
pub(crate) mod ctxt;
pub(crate) mod symbol;

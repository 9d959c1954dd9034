//! The `const _: () = { ... }` wrapper around generated items.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn wrap(body: &TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            non_upper_case_globals,
            unused_qualifications,
            unused_imports,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
        const _: () = {
            #body
        };
    }
}

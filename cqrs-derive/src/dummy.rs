//! The `const _: () = { ... }` wrapper around generated items.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn wrap(body: &TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        const _: () = {
            #body
        };
    }
}

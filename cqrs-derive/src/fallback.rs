//! What a failed derive emits besides its errors (thiserror's `fallback.rs`): a marker impl
//! that gives the struct cqrs-core's stand-in impls of every model trait, so that the uses of
//! the model compile and the user sees only the derive's own errors.

use proc_macro2::TokenStream;
use quote::quote;

use crate::internals::attr::{Container, Kind};
use crate::internals::ctxt::Ctxt;

/// The errors, then the marker impl (none for an input that cannot take one: not a struct
/// with named fields, or a generic one).
pub(crate) fn with_errors(kind: Kind, input: &syn::DeriveInput, error: syn::Error) -> TokenStream {
    let errors = error.into_compile_error();
    let syn::Data::Struct(syn::DataStruct {
        fields: syn::Fields::Named(fields),
        ..
    }) = &input.data
    else {
        return errors;
    };
    if !input.generics.params.is_empty() {
        return errors;
    }
    // The attributes once more, for what the marker needs; their errors are already reported.
    let cx = Ctxt::new();
    let attrs = Container::from_ast(&cx, kind, input);
    let _ = cx.check();
    let ident = &input.ident;
    let krate = attrs
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::cqrs_core));
    let pk_name = attrs
        .primary_key
        .as_ref()
        .and_then(|keys| keys.first())
        .map_or_else(|| "id".to_owned(), ToString::to_string);
    let pk = fields
        .named
        .iter()
        .find(|f| f.ident.as_ref().is_some_and(|i| *i == pk_name))
        .map_or_else(
            || quote!(::std::string::String),
            |f| {
                let ty = &f.ty;
                quote!(#ty)
            },
        );
    let marker = match kind {
        Kind::Master => {
            let table = attrs
                .table_name
                .as_ref()
                .map_or_else(|| quote!(()), |table| quote!(#table::table));
            quote! {
                #[automatically_derived]
                impl #krate::__private::InvalidMaster for #ident {
                    type Pk = #pk;
                    type Table = #table;
                }
            }
        }
        Kind::Replica => {
            let custom = Container::flag(attrs.custom_hooks.as_ref())
                || Container::flag(attrs.custom_serialization.as_ref());
            let hooks = (!custom).then(|| {
                quote! {
                    #[automatically_derived]
                    impl #krate::__private::InvalidReplicaHooks for #ident {}
                }
            });
            quote! {
                #[automatically_derived]
                impl #krate::__private::InvalidReplica for #ident {
                    type Pk = #pk;
                }
                #hooks
            }
        }
    };
    quote!(#errors #marker)
}

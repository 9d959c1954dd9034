//! Pieces both derives emit.

use proc_macro2::TokenStream;
use quote::quote;

use crate::internals::ast::Model;

/// Everything about the columns of a model, as tokens.
pub(crate) struct Columns {
    /// `table::col` for every field, in struct order.
    pub(crate) paths: Vec<TokenStream>,
    /// `(T1, T2, ...)`: the row tuple type.
    pub(crate) row_ty: TokenStream,
    /// `(table::a, table::b, ...)`: the select/returning clause.
    pub(crate) select: TokenStream,
    /// `|t| Model { a: t.0, ... }`.
    pub(crate) from_tuple: TokenStream,
}

pub(crate) fn columns(model: &Model<'_>) -> Columns {
    let table = &model.table;
    let ident = model.ident;
    let paths: Vec<TokenStream> = model
        .fields
        .iter()
        .map(|f| {
            let column = &f.column;
            quote!(#table::#column)
        })
        .collect();
    let tys = model.fields.iter().map(|f| f.ty);
    let idents = model.fields.iter().map(|f| f.ident);
    let indexes = (0..model.fields.len()).map(syn::Index::from);
    let row_ty = quote!((#(#tys,)*));
    Columns {
        select: quote!((#(#paths,)*)),
        from_tuple: quote!(|__cqrs_row: #row_ty| #ident { #(#idents: __cqrs_row.#indexes,)* }),
        row_ty,
        paths,
    }
}

/// The column path of field `index`.
pub(crate) fn column(model: &Model<'_>, index: usize) -> TokenStream {
    let table = &model.table;
    let column = &model.fields[index].column;
    quote!(#table::#column)
}

/// The backends to emit: the gate macro, the connection type and whether it is PostgreSQL.
pub(crate) fn backends(model: &Model<'_>) -> Vec<(TokenStream, TokenStream, bool)> {
    let private = private(model);
    let mut out = Vec::new();
    if model.has_backend("sqlite") {
        out.push((
            quote!(#private::with_sqlite),
            quote!(#private::SqliteConnection),
            false,
        ));
    }
    if model.has_backend("postgres") {
        out.push((
            quote!(#private::with_postgres),
            quote!(#private::PgConnection),
            true,
        ));
    }
    out
}

/// `::cqrs_core::__private`.
pub(crate) fn private(model: &Model<'_>) -> TokenStream {
    let krate = &model.krate;
    quote!(#krate::__private)
}

/// `concat!(module_path!(), "::", "Book")`.
pub(crate) fn type_name(model: &Model<'_>) -> TokenStream {
    let name = model.ident.to_string();
    quote!(::core::concat!(::core::module_path!(), "::", #name))
}

/// The trait imports generated bodies use (methods only, no names).
pub(crate) fn diesel_traits(model: &Model<'_>) -> TokenStream {
    let private = private(model);
    quote! {
        use #private::diesel::{
            ExpressionMethods as _, NullableExpressionMethods as _, OptionalExtension as _,
            QueryDsl as _, RunQueryDsl as _,
        };
    }
}

/// The version accessor pair shared by both kinds.
pub(crate) fn version_fns(model: &Model<'_>) -> TokenStream {
    let krate = &model.krate;
    let revision = model.fields[model.revision].ident;
    let updated = model.fields[model.updated].ident;
    quote! {
        fn cqrs_version(&self) -> #krate::db::Version {
            #krate::db::Version {
                revision: self.#revision,
                updated: #krate::value::CqrsTimestamp::to_utc(&self.#updated),
            }
        }
    }
}

/// The model-info registration.
pub(crate) fn register_info(model: &Model<'_>, kind: &TokenStream) -> TokenStream {
    let krate = &model.krate;
    let private = private(model);
    let cqrs_id = &model.cqrs_id;
    let type_name = type_name(model);
    quote! {
        #private::inventory::submit! {
            #krate::registry::ModelInfo {
                kind: #krate::registry::ModelKind::#kind,
                cqrs_id: #cqrs_id,
                type_name: #type_name,
            }
        }
    }
}

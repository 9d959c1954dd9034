//! Pieces both derives emit.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::internals::ast::{Decimal, Model, unraw};
use crate::internals::attr::Backend;

/// What one backend's store impl is built from, as tokens.
pub(crate) struct Store<'m> {
    /// The path of the runtime crate.
    pub(crate) krate: &'m syn::Path,
    /// `::cqrs_core::__private`.
    pub(crate) private: TokenStream,
    /// The model type.
    pub(crate) ident: &'m syn::Ident,
    /// The diesel table module.
    pub(crate) table: &'m syn::Path,
    /// The connection type of the backend.
    pub(crate) conn: TokenStream,
    /// Whether the backend is PostgreSQL.
    pub(crate) is_pg: bool,
    /// The diesel trait imports of every generated body.
    pub(crate) traits: TokenStream,
    /// `table::col` for every field, in struct order.
    pub(crate) paths: Vec<TokenStream>,
    /// The field names, in struct order.
    pub(crate) idents: Vec<&'m syn::Ident>,
    /// `(T1, T2, ...)`: the row tuple type.
    pub(crate) row_ty: TokenStream,
    /// `(table::a, table::b, ...)`: the select/returning clause.
    pub(crate) select: TokenStream,
    /// `|t| Model { a: t.0, ... }`.
    pub(crate) from_tuple: TokenStream,
    /// The primary key field.
    pub(crate) pk_ident: &'m syn::Ident,
    /// The columns of the primary key, `cqrs_revision` and `cqrs_updated`.
    pub(crate) pk_col: TokenStream,
    pub(crate) rev_col: TokenStream,
    pub(crate) upd_col: TokenStream,
    /// The type of `cqrs_updated`.
    pub(crate) updated_ty: &'m syn::Type,
}

impl<'m> Store<'m> {
    fn new(model: &'m Model<'_>, conn: TokenStream, is_pg: bool) -> Self {
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
        let idents: Vec<_> = model.fields.iter().map(|f| f.ident).collect();
        let indexes = (0..model.fields.len()).map(syn::Index::from);
        let row_ty = quote!((#(#tys,)*));
        Store {
            krate: &model.krate,
            private: private(model),
            ident,
            table,
            conn,
            is_pg,
            traits: diesel_traits(model),
            select: quote!((#(#paths,)*)),
            from_tuple: quote!(|__cqrs_row: #row_ty| #ident { #(#idents: __cqrs_row.#indexes,)* }),
            row_ty,
            paths,
            idents,
            pk_ident: model.pk_field().ident,
            pk_col: column(model, model.pk),
            rev_col: column(model, model.revision),
            upd_col: column(model, model.updated),
            updated_ty: model.fields[model.updated].ty,
        }
    }

    /// `query.<fetch>`, `FOR UPDATE` when `lock` is true on PostgreSQL (SQLite locks the whole
    /// database for the transaction already).
    pub(crate) fn locked(&self, fetch: &TokenStream) -> TokenStream {
        if self.is_pg {
            quote!(if lock {
                query.for_update().#fetch
            } else {
                query.#fetch
            })
        } else {
            quote!({
                let _ = lock;
                query.#fetch
            })
        }
    }
}

/// The store impl and registry entry of every enabled backend: `entry` and `vtable` name the
/// registry types (`MasterEntry`, `MasterVTable`, ...).
pub(crate) fn stores(
    model: &Model<'_>,
    entry: &TokenStream,
    vtable: &TokenStream,
    store_impl: fn(&Model<'_>, &Store<'_>) -> TokenStream,
) -> TokenStream {
    backends(model)
        .into_iter()
        .map(|(gate, conn, is_pg)| {
            if !is_pg && let Some(error) = no_sqlite_type(model) {
                // one clear error instead of diesel's dozens, only when SQLite is compiled
                return quote!(#gate! { #error });
            }
            let store = Store::new(model, conn, is_pg);
            let checks = column_checks(model, &store);
            let body = store_impl(model, &store);
            let Store {
                krate,
                private,
                ident,
                conn,
                ..
            } = &store;
            let cqrs_id = &model.cqrs_id;
            let type_name = type_name(model);
            quote! {
                #gate! {
                    #checks
                    #body
                    #private::inventory::submit! {
                        #krate::registry::#entry::<#conn> {
                            cqrs_id: #cqrs_id,
                            type_name: #type_name,
                            ops: &#krate::registry::#vtable::<#ident>::NEW,
                        }
                    }
                }
            }
        })
        .collect()
}

/// A `compile_error!` on the first field whose type SQLite cannot store (`uuid::Uuid`), with
/// the framework's type to use instead.
fn no_sqlite_type(model: &Model<'_>) -> Option<TokenStream> {
    let field = model
        .fields
        .iter()
        .find(|f| crate::internals::ast::is_path(f.option_inner.unwrap_or(f.ty), &["Uuid"]))?;
    let message = format!(
        "`{}`: SQLite has no UUID column type; declare the field `cqrs_core::types::UuidText` \
         (a `Text` column holding the hyphenated UUID), or limit the model to \
         `#[cqrs(backends(postgres))]`",
        field.ident
    );
    let span = syn::spanned::Spanned::span(field.ty);
    Some(quote::quote_spanned!(span => ::core::compile_error!(#message);))
}

/// One assertion per field, spanned on its type, that the type can hold its column on the
/// store's backend: a mismatch is first reported there, with what to use.
fn column_checks(model: &Model<'_>, store: &Store<'_>) -> TokenStream {
    let Store { private, conn, .. } = store;
    let checks = model.fields.iter().enumerate().map(|(i, f)| {
        let column = column(model, i);
        let ty = f.ty;
        quote_spanned! {ty.span()=>
            #private::assert_column_type::<
                #private::diesel::dsl::SqlTypeOf<#column>,
                <#conn as #private::diesel::Connection>::Backend,
                #ty,
            >();
        }
    });
    quote!(const _: () = { #(#checks)* };)
}

/// `db_latest_update`, the same in both kinds' store impls: the newest `cqrs_updated` (by
/// `ORDER BY ... DESC LIMIT 1`: `TimestamptzSqlite` has no `MAX`).
pub(crate) fn latest_update(store: &Store<'_>) -> TokenStream {
    let Store {
        krate,
        private,
        table,
        conn,
        traits,
        upd_col,
        updated_ty,
        ..
    } = store;
    quote! {
        fn db_latest_update(conn: &mut #conn) -> #private::diesel::QueryResult<::core::option::Option<#private::chrono::DateTime<#private::chrono::Utc>>> {
            #traits
            let newest: ::core::option::Option<#updated_ty> = #table::table
                .select(#upd_col)
                .order(#upd_col.desc())
                .first(conn)
                .optional()?;
            ::core::result::Result::Ok(newest.map(|t| #krate::value::CqrsTimestamp::to_utc(&t)))
        }
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
    if model.has_backend(Backend::Sqlite) {
        out.push((
            quote!(#private::with_sqlite),
            quote!(#private::SqliteConnection),
            false,
        ));
    }
    if model.has_backend(Backend::Postgres) {
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
        fn cqrs_version(&self) -> #krate::rules::Version {
            #krate::rules::Version {
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

/// `fn db_lookup`: one Django lookup (`price__gt`) on a filterable field, as a boxed diesel
/// filter of `boxed`'s type; an unknown field is an error naming the valid ones. Masters
/// filter `sync`/`diff-master`, replicas `deleted-diff-replica`.
pub(crate) fn lookup_fn(model: &Model<'_>, store: &Store<'_>, boxed: &TokenStream) -> TokenStream {
    let Store {
        krate,
        private,
        table,
        ..
    } = store;
    let pk_name = model.pk_field().json_name.clone();
    let valid: Vec<String> = std::iter::once("pk".to_owned())
        .chain(
            model
                .fields
                .iter()
                .filter(|f| f.filterable)
                .map(|f| f.json_name.clone()),
        )
        .collect();
    let arms = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.filterable)
        .map(|(i, f)| {
            let col = column(model, i);
            let name = &f.json_name;
            let names = if f.json_name == pk_name {
                quote!(#name | "pk")
            } else {
                quote!(#name)
            };
            let text = if f.is_text {
                quote!(text)
            } else {
                quote!(plain)
            };
            // decimals compare as numbers: on SQLite always (a double or a text column), on
            // PostgreSQL for a text column
            let numeric = match (f.decimal, store.is_pg) {
                (Some(_), false) => Some(quote!(sqlite)),
                (Some(Decimal::Text), true) => Some(quote!(postgres)),
                _ => None,
            };
            if let Some(backend) = numeric {
                let column = unraw(&f.column);
                return quote!(#names => #krate::filter::decimal::#backend::<#table::table>(lookup, #column)?,);
            }
            if let Some(inner) = f.option_inner {
                quote!(#names => #private::lookup!(nullable lookup, #col, #inner, #text),)
            } else {
                let ty = f.ty;
                quote!(#names => #private::lookup!(lookup, #col, #ty, #text),)
            }
        });
    quote! {
        fn db_lookup(lookup: &#krate::filter::Lookup) -> ::core::result::Result<#boxed, #krate::filter::FilterError> {
            let filter: #boxed = match lookup.field.as_str() {
                #(#arms)*
                other => {
                    return ::core::result::Result::Err(#krate::filter::FilterError::unknown_field(other, &[#(#valid),*]));
                }
            };
            ::core::result::Result::Ok(filter)
        }
    }
}

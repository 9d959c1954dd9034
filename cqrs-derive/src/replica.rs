//! Code generation for `#[derive(CqrsReplica)]`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::dummy;
use crate::emit::{self, Store};
use crate::internals::ast::{Model, unraw};
use crate::internals::attr::{Container, Kind};
use crate::internals::{check, ctxt::Ctxt};

pub(crate) fn expand(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = Model::from_ast(&cx, Kind::Replica, input);
    if let Some(model) = &model {
        check::check(&cx, model);
    }
    cx.check()?;
    let Some(model) = model else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "invalid CqrsReplica model",
        ));
    };
    let body = [
        model_impl(&model),
        hooks_impl(&model),
        stores(&model),
        emit::register_info(&model, &quote!(Replica)),
    ];
    Ok(dummy::wrap(&quote!(#(#body)*)))
}

fn model_impl(model: &Model<'_>) -> TokenStream {
    let krate = &model.krate;
    let private = emit::private(model);
    let ident = model.ident;
    let cqrs_id = &model.cqrs_id;
    let type_name = emit::type_name(model);
    let pk = model.pk_field();
    let pk_ident = pk.ident;
    let pk_ty = pk.ty;
    let pk_name = unraw(pk_ident);
    let attrs = &model.attrs;
    let mapping = if let Some((_, pairs)) = &attrs.mapping {
        let pairs = pairs.iter().map(|(master, replica)| {
            let master = unraw(master);
            let replica = unraw(replica);
            quote!((#master, #replica))
        });
        quote!(::core::option::Option::Some(&[#(#pairs),*]))
    } else {
        quote!(::core::option::Option::None)
    };
    let fields = model
        .fields
        .iter()
        .filter(|f| !f.skipped())
        .map(|f| unraw(f.ident));
    let required = model
        .fields
        .iter()
        .filter(|f| f.option_inner.is_none() && !f.skipped() && !f.defaulted())
        .map(|f| unraw(f.ident));
    let only_direct = Container::flag(attrs.only_direct_syncs.as_ref());
    let meta = Container::flag(attrs.meta_flag.as_ref());
    let for_update = Container::flag(attrs.select_for_update.as_ref());
    let custom = Container::flag(attrs.custom_serialization.as_ref());
    let default_hooks = !custom && !Container::flag(attrs.custom_hooks.as_ref());
    let version = emit::version_fns(model);

    let create = model.fields.iter().map(|f| {
        let field = f.ident;
        let ty = f.ty;
        let name = unraw(field);
        if f.skipped() {
            quote!(#field: ::core::default::Default::default())
        } else if f.defaulted() {
            quote!(#field: #private::field_or_default::<#ty>(CQRS_ID, data, #name, pk)?)
        } else {
            quote!(#field: #private::field_required::<#ty>(CQRS_ID, data, #name, pk)?)
        }
    });
    let update = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != model.pk && !f.skipped())
        .map(|(_, f)| {
            let field = f.ident;
            let name = unraw(field);
            quote!(#private::field_update(CQRS_ID, &mut row.#field, data, #name, pk)?;)
        });

    quote! {
        #[automatically_derived]
        impl #krate::replica::ReplicaModel for #ident {
            type Pk = #pk_ty;
            const CQRS_ID: &'static str = #cqrs_id;
            const TYPE_NAME: &'static str = #type_name;
            const MAPPING: ::core::option::Option<&'static [(&'static str, &'static str)]> = #mapping;
            const PK_FIELD: &'static str = #pk_name;
            const REQUIRED: &'static [&'static str] = &[#(#required),*];
            const FIELDS: &'static [&'static str] = &[#(#fields),*];
            const ONLY_DIRECT_SYNCS: bool = #only_direct;
            const META: bool = #meta;
            const SELECT_FOR_UPDATE: bool = #for_update;
            const CUSTOM_SERIALIZATION: bool = #custom;
            const DEFAULT_HOOKS: bool = #default_hooks;

            fn cqrs_pk(&self) -> &Self::Pk {
                &self.#pk_ident
            }

            #version

            fn cqrs_from_data(
                data: &#private::serde_json::Map<::std::string::String, #private::serde_json::Value>,
                existing: ::core::option::Option<Self>,
                pk: &str,
            ) -> ::core::result::Result<Self, #krate::ApplyError> {
                const CQRS_ID: &str = #cqrs_id;
                match existing {
                    ::core::option::Option::None => ::core::result::Result::Ok(#ident { #(#create,)* }),
                    ::core::option::Option::Some(mut row) => {
                        #(#update)*
                        ::core::result::Result::Ok(row)
                    }
                }
            }
        }
    }
}

fn hooks_impl(model: &Model<'_>) -> TokenStream {
    let attrs = &model.attrs;
    if Container::flag(attrs.custom_hooks.as_ref())
        || Container::flag(attrs.custom_serialization.as_ref())
    {
        return TokenStream::new();
    }
    let krate = &model.krate;
    let ident = model.ident;
    quote! {
        #[automatically_derived]
        impl<__C> #krate::replica::ReplicaHooks<__C> for #ident
        where
            __C: #krate::db::CqrsConnection,
            #ident: #krate::replica::ReplicaStore<__C>,
        {
        }
    }
}

fn stores(model: &Model<'_>) -> TokenStream {
    emit::stores(
        model,
        &quote!(ReplicaEntry),
        &quote!(ReplicaVTable),
        store_impl,
    )
}

// The destructure of `Store` below is the same as in `master.rs`: each emitter names the
// parts it splices into its own impl (a deliberate pair; the parts are built once, in
// `emit::Store`).
#[allow(
    clippy::too_many_lines,
    reason = "the generated store, one block per hook; a smaller expansion is issue 36's compile-cost work"
)]
fn store_impl(model: &Model<'_>, store: &Store<'_>) -> TokenStream {
    let Store {
        krate,
        private,
        ident,
        table,
        conn,
        traits,
        paths,
        idents,
        row_ty,
        select,
        from_tuple,
        pk_ident,
        pk_col,
        rev_col,
        upd_col,
        updated_ty,
        ..
    } = store;
    let latest = emit::latest_update(store);
    // `skip` columns belong to the replica service: written on insert (their default), never
    // by a later apply, so that a local write racing with an apply is never undone.
    let set = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != model.pk && !f.skipped())
        .map(|(i, f)| {
            let col = emit::column(model, i);
            let field = f.ident;
            quote!(#col.eq(&row.#field))
        });
    let lock = store.locked(&quote!(first(conn)));
    let backend = quote!(<#conn as #private::diesel::Connection>::Backend);
    let boxed = quote!(#krate::filter::BoxedFilter<#table::table, #backend>);
    let lookup = emit::lookup_fn(model, store, &boxed);
    let lock_many = store.locked(&quote!(load(conn)?));
    let excluded = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != model.pk && !f.skipped())
        .map(|(i, _)| {
            let col = emit::column(model, i);
            quote!(#col.eq(#private::diesel::upsert::excluded(#col)))
        })
        .collect::<Vec<_>>();

    quote! {
        #[automatically_derived]
        impl #krate::replica::ReplicaTable<#conn> for #ident {
            type Table = #table::table;

            fn db_get(conn: &mut #conn, pk: &Self::Pk, lock: bool) -> #private::diesel::QueryResult<::core::option::Option<Self>> {
                #traits
                let query = #table::table.find(pk).select(#select);
                let stored: ::core::option::Option<#row_ty> = #lock.optional()?;
                ::core::result::Result::Ok(stored.map(#from_tuple))
            }

            fn db_insert(conn: &mut #conn, row: &Self) -> #private::diesel::QueryResult<()> {
                #traits
                #private::diesel::insert_into(#table::table)
                    .values((#(#paths.eq(&row.#idents),)*))
                    .execute(conn)
                    .map(drop)
            }

            fn db_update(conn: &mut #conn, row: &Self) -> #private::diesel::QueryResult<()> {
                #traits
                // cached (diesel caches no UPDATE by itself); loaded, as `Cached` needs
                #private::Cached(#private::diesel::update(#table::table.find(&row.#pk_ident))
                    .set((#(#set,)*))
                    .returning(#pk_col))
                    .load::<Self::Pk>(conn)
                    .map(drop)
            }

            fn db_get_many(
                conn: &mut #conn,
                pks: &[Self::Pk],
                lock: bool,
            ) -> #private::diesel::QueryResult<::std::vec::Vec<Self>> {
                #traits
                if let [pk] = pks {
                    // a batch of one row: a statement diesel caches (no `IN (...)` list)
                    return ::core::result::Result::Ok(
                        <Self as #krate::replica::ReplicaTable<#conn>>::db_get(conn, pk, lock)?
                            .into_iter()
                            .collect(),
                    );
                }
                let mut found = ::std::vec::Vec::with_capacity(pks.len());
                for chunk in pks.chunks(#private::KEY_CHUNK) {
                    let query = #table::table.filter(#pk_col.eq_any(chunk)).select(#select);
                    let stored: ::std::vec::Vec<#row_ty> = #lock_many;
                    found.extend(stored.into_iter().map(#from_tuple));
                }
                ::core::result::Result::Ok(found)
            }

            fn db_upsert(conn: &mut #conn, rows: &[Self]) -> #private::diesel::QueryResult<()> {
                #traits
                if rows.is_empty() {
                    return ::core::result::Result::Ok(());
                }
                if let [row] = rows {
                    // one row: one SQL text, cached (diesel caches no upsert by itself)
                    return #private::Cached(#private::diesel::insert_into(#table::table)
                        .values((#(#paths.eq(&row.#idents),)*))
                        .on_conflict(#pk_col)
                        .do_update()
                        .set((#(#excluded,)*))
                        .returning(#pk_col))
                        .load::<Self::Pk>(conn)
                        .map(drop);
                }
                let values: ::std::vec::Vec<_> = rows.iter().map(|row| (#(#paths.eq(&row.#idents),)*)).collect();
                #private::diesel::insert_into(#table::table)
                    .values(values)
                    .on_conflict(#pk_col)
                    .do_update()
                    .set((#(#excluded,)*))
                    .execute(conn)
                    .map(drop)
            }

            fn db_delete(conn: &mut #conn, pk: &Self::Pk) -> #private::diesel::QueryResult<bool> {
                #traits
                #private::diesel::delete(#table::table.find(pk)).execute(conn).map(|n| n > 0)
            }

            fn db_versions(
                conn: &mut #conn,
                pks: &[Self::Pk],
            ) -> #private::diesel::QueryResult<::std::vec::Vec<(Self::Pk, #krate::rules::Version)>> {
                #traits
                let rows: ::std::vec::Vec<(Self::Pk, i32, #updated_ty)> = #table::table
                    .filter(#pk_col.eq_any(pks))
                    .select((#pk_col, #rev_col, #upd_col))
                    .load(conn)?;
                ::core::result::Result::Ok(
                    rows.into_iter()
                        .map(|(pk, revision, updated)| {
                            (pk, #krate::rules::Version {
                                revision,
                                updated: #krate::value::CqrsTimestamp::to_utc(&updated),
                            })
                        })
                        .collect(),
                )
            }

            fn db_pks_where(
                conn: &mut #conn,
                filters: ::std::vec::Vec<#boxed>,
                after: ::core::option::Option<&Self::Pk>,
                limit: i64,
            ) -> #private::diesel::QueryResult<::std::vec::Vec<Self::Pk>> {
                #traits
                let mut query = #table::table.select(#pk_col).order(#pk_col.asc()).limit(limit).into_boxed();
                for filter in filters {
                    query = query.filter(filter);
                }
                if let ::core::option::Option::Some(after) = after {
                    query = query.filter(#pk_col.gt(after));
                }
                query.load(conn)
            }

            #lookup

            fn db_delete_many(conn: &mut #conn, pks: &[Self::Pk]) -> #private::diesel::QueryResult<usize> {
                #traits
                if let [pk] = pks {
                    // one row: a statement diesel caches (no `IN (...)` list)
                    return #private::diesel::delete(#table::table.find(pk)).execute(conn);
                }
                #private::diesel::delete(#table::table.filter(#pk_col.eq_any(pks))).execute(conn)
            }

            fn db_clear(conn: &mut #conn) -> #private::diesel::QueryResult<usize> {
                #traits
                #private::diesel::delete(#table::table).execute(conn)
            }

            fn db_count(conn: &mut #conn) -> #private::diesel::QueryResult<i64> {
                #traits
                #table::table.count().get_result(conn)
            }

            #latest
        }
    }
}

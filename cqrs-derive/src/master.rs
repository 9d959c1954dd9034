//! Code generation for `#[derive(CqrsMaster)]`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::dummy;
use crate::emit::{self, Store};
use crate::internals::ast::Model;
use crate::internals::attr::{Kind, Tracked};
use crate::internals::{check, ctxt::Ctxt};

pub(crate) fn expand(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = Model::from_ast(&cx, Kind::Master, input);
    if let Some(model) = &model {
        check::check(&cx, model);
    }
    cx.check()?;
    let Some(model) = model else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "invalid CqrsMaster model",
        ));
    };
    let body = [
        model_impl(&model),
        stores(&model),
        emit::register_info(&model, &quote!(Master)),
    ];
    Ok(dummy::wrap(&quote!(#(#body)*)))
}

/// Fields sent in `instance_data` (without the two bookkeeping fields, appended last).
fn sent_fields<'m, 'a>(model: &'m Model<'a>) -> Vec<&'m crate::internals::ast::Field<'a>> {
    let listed = model.attrs.fields.as_ref().map(|(_, list)| list);
    model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            *i != model.revision
                && *i != model.updated
                && !f.skipped()
                && listed.is_none_or(|list| list.iter().any(|l| l == f.ident))
        })
        .map(|(_, f)| f)
        .collect()
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
    let produce = model.attrs.produce.as_ref().is_none_or(|f| f.value);
    let revision = model.fields[model.revision].ident;
    let updated = model.fields[model.updated].ident;
    let updated_ty = model.fields[model.updated].ty;
    let filter_names = std::iter::once("pk".to_owned()).chain(
        model
            .fields
            .iter()
            .filter(|f| f.filterable)
            .map(|f| f.json_name.clone()),
    );
    let tracked: Vec<_> = match model.attrs.tracked_fields.as_ref() {
        None => Vec::new(),
        // every field, as django-cqrs's ALL_BASIC_FIELDS tracks every concrete field
        Some((_, Tracked::All)) => model.fields.iter().filter(|f| !f.skipped()).collect(),
        Some((_, Tracked::List(list))) => list.iter().filter_map(|i| model.field(i)).collect(),
    };
    let tracked_names = tracked.iter().map(|f| f.json_name.clone());
    let tracked_inserts = tracked.iter().map(|f| {
        let name = &f.json_name;
        let field = f.ident;
        quote!(map.insert(::std::string::String::from(#name), #krate::value::CqrsValue::to_cqrs(&self.#field));)
    });
    let tracked_len = tracked.len();

    let sync_filter = model.attrs.sync_filter.as_ref().map(|path| {
        quote! {
            fn cqrs_is_sync_instance(&self) -> bool {
                #path(self)
            }
        }
    });
    let meta = model.attrs.meta_fn.as_ref().map(|path| {
        quote! {
            fn cqrs_meta(&self, ctx: &#krate::settings::MetaContext<'_>) -> ::core::option::Option<#private::serde_json::Value> {
                #private::meta_value(#path(self, ctx))
            }
        }
    });
    let correlation = model.attrs.correlation_id.as_ref().map(|path| {
        quote! {
            fn cqrs_correlation_id(&self, ctx: &#krate::settings::CorrelationContext<'_>) -> ::core::option::Option<::std::string::String> {
                #private::correlation_value(#path(self, ctx))
            }
        }
    });
    let delete_data = model.attrs.delete_data.as_ref().map(|path| {
        quote! {
            fn cqrs_delete_data(&self) -> ::core::option::Option<#private::serde_json::Value> {
                #path(self)
            }
        }
    });
    let version = emit::version_fns(model);
    let relates = model.attrs.relate.is_some();

    quote! {
        #[automatically_derived]
        impl #krate::master::MasterModel for #ident {
            type Pk = #pk_ty;
            const CQRS_ID: &'static str = #cqrs_id;
            const TYPE_NAME: &'static str = #type_name;
            const PRODUCE: bool = #produce;
            const FIELDS: &'static [&'static str] = &[#(#filter_names),*];
            const TRACKED_FIELDS: &'static [&'static str] = &[#(#tracked_names),*];
            const RELATES: bool = #relates;

            fn cqrs_pk(&self) -> &Self::Pk {
                &self.#pk_ident
            }

            #version

            fn cqrs_set_version(&mut self, version: #krate::rules::Version) {
                self.#revision = version.revision;
                self.#updated = <#updated_ty as #krate::value::CqrsTimestamp>::from_utc(version.updated);
            }

            fn cqrs_tracked(&self) -> #private::serde_json::Map<::std::string::String, #private::serde_json::Value> {
                let mut map = #private::serde_json::Map::with_capacity(#tracked_len);
                #(#tracked_inserts)*
                map
            }

            #sync_filter
            #meta
            #correlation
            #delete_data
        }
    }
}

/// `db_instance_data`: the rows' `instance_data`, through the custom serializer (with the data
/// `relate` loads for all the rows at once) or from the sent fields.
fn instance_data_fn(model: &Model<'_>, store: &Store<'_>) -> TokenStream {
    let krate = &model.krate;
    let private = emit::private(model);
    let conn = &store.conn;
    let revision = model.fields[model.revision].ident;
    let updated = model.fields[model.updated].ident;
    let map_ty =
        quote!(#private::serde_json::Map<::std::string::String, #private::serde_json::Value>);
    let type_name = quote!(<Self as #krate::master::MasterModel>::TYPE_NAME);
    let (related, serialize) = match (&model.attrs.serializer, &model.attrs.relate) {
        (Some((_, path)), Some((_, relate))) => (
            quote!(let related = #private::related(#type_name, #relate(conn, rows))?;),
            quote!(let mut map = #private::custom_serialized(#type_name, #path(row, &related))?;),
        ),
        (Some((_, path)), None) => (
            quote!(let _ = conn;),
            quote!(let mut map = #private::custom_serialized(#type_name, #path(row))?;),
        ),
        (None, _) => {
            let sent = sent_fields(model);
            let len = sent.len() + 2;
            let inserts = sent.iter().map(|f| {
                let name = &f.json_name;
                let field = f.ident;
                quote!(map.insert(::std::string::String::from(#name), #krate::value::CqrsValue::to_cqrs(&row.#field));)
            });
            (
                quote!(let _ = conn;),
                quote! {
                    let mut map = #private::serde_json::Map::with_capacity(#len);
                    #(#inserts)*
                },
            )
        }
    };
    quote! {
        fn db_instance_data(conn: &mut #conn, rows: &[Self]) -> #krate::Result<::std::vec::Vec<#map_ty>> {
            #related
            rows.iter()
                .map(|row| {
                    #serialize
                    map.insert(::std::string::String::from("cqrs_revision"), #private::serde_json::Value::from(row.#revision));
                    map.insert(::std::string::String::from("cqrs_updated"), #krate::value::CqrsValue::to_cqrs(&row.#updated));
                    ::core::result::Result::Ok(map)
                })
                .collect()
        }
    }
}

fn stores(model: &Model<'_>) -> TokenStream {
    emit::stores(
        model,
        &quote!(MasterEntry),
        &quote!(MasterVTable),
        store_impl,
    )
}

#[allow(
    clippy::too_many_lines,
    reason = "one generated impl, read top to bottom"
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
    let backend = quote!(<#conn as #private::diesel::Connection>::Backend);
    let boxed = quote!(#krate::filter::BoxedFilter<#table::table, #backend>);
    let lock = store.locked(&quote!(first(conn)));
    let lookup = emit::lookup_fn(model, store, &boxed);
    // the writable columns (all but the key and the bookkeeping): a full save sets each, a
    // partial save each only when named (diesel skips a `None` changeset)
    let writable: Vec<(String, TokenStream)> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != model.pk && *i != model.revision && *i != model.updated)
        .map(|(i, f)| {
            let col = emit::column(model, i);
            let field = f.ident;
            (
                crate::internals::ast::unraw(field),
                quote!(#col.eq(&row.#field)),
            )
        })
        .collect();
    let set: Vec<&TokenStream> = writable.iter().map(|(_, set)| set).collect();
    let writable_names = writable.iter().map(|(name, _)| name);
    let partial_set = writable
        .iter()
        .map(|(name, set)| quote!(fields.contains(&#name).then(|| #set)));
    let instance_data = instance_data_fn(model, store);

    quote! {
        #[automatically_derived]
        impl #krate::master::MasterTable<#conn> for #ident {
            type Table = #table::table;
            const WRITABLE: &'static [&'static str] = &[#(#writable_names),*];

            fn db_update_fields(
                conn: &mut #conn,
                row: &Self,
                fields: &[&str],
                revision: bool,
                updated: ::core::option::Option<#private::chrono::DateTime<#private::chrono::Utc>>,
            ) -> #private::diesel::QueryResult<::core::option::Option<Self>> {
                #traits
                let bump = revision.then(|| #rev_col.eq(#rev_col + 1));
                let updated = updated.map(|updated| {
                    let updated: #updated_ty = #krate::value::CqrsTimestamp::from_utc(updated);
                    #upd_col.eq(updated)
                });
                // one cached statement per set of columns (diesel caches no UPDATE)
                let stored: ::core::option::Option<#row_ty> = #private::Cached(#private::diesel::update(#table::table.find(&row.#pk_ident))
                    .set((#(#partial_set,)* bump, updated))
                    .returning(#select))
                    .get_result(conn)
                    .optional()?;
                ::core::result::Result::Ok(stored.map(#from_tuple))
            }

            fn db_insert(conn: &mut #conn, rows: &[Self]) -> #private::diesel::QueryResult<::std::vec::Vec<Self>> {
                #traits
                let stored: ::std::vec::Vec<#row_ty> = if let [row] = rows {
                    // one row: a statement diesel caches (it caches no multi-row insert)
                    #private::diesel::insert_into(#table::table)
                        .values((#(#paths.eq(&row.#idents),)*))
                        .returning(#select)
                        .get_results(conn)?
                } else {
                    let values: ::std::vec::Vec<_> = rows.iter().map(|row| (#(#paths.eq(&row.#idents),)*)).collect();
                    #private::diesel::insert_into(#table::table)
                        .values(values)
                        .returning(#select)
                        .get_results(conn)?
                };
                ::core::result::Result::Ok(stored.into_iter().map(#from_tuple).collect())
            }

            fn db_update(
                conn: &mut #conn,
                row: &Self,
                updated: #private::chrono::DateTime<#private::chrono::Utc>,
                message: ::core::option::Option<&#krate::db::OutboxMessage>,
            ) -> #private::diesel::QueryResult<::core::option::Option<(Self, ::core::option::Option<i64>)>> {
                #traits
                let updated: #updated_ty = #krate::value::CqrsTimestamp::from_utc(updated);
                let update = #private::Cached(#private::diesel::update(#table::table.find(&row.#pk_ident))
                    .set((#(#set,)* #rev_col.eq(#rev_col + 1), #upd_col.eq(updated)))
                    .returning(#select));
                let stored: ::core::option::Option<(#row_ty, ::core::option::Option<i64>)> =
                    #krate::db::RowUpdate::<'_, #conn, #row_ty>::run(update, conn, message)?;
                ::core::result::Result::Ok(stored.map(|(row, id)| ((#from_tuple)(row), id)))
            }

            fn db_set_created(
                conn: &mut #conn,
                pk: &Self::Pk,
                version: #krate::rules::Version,
            ) -> #private::diesel::QueryResult<::core::option::Option<Self>> {
                #traits
                let updated: #updated_ty = #krate::value::CqrsTimestamp::from_utc(version.updated);
                let stored: ::core::option::Option<#row_ty> = #private::Cached(#private::diesel::update(#table::table.find(pk))
                    .set((#rev_col.eq(version.revision), #upd_col.eq(updated)))
                    .returning(#select))
                    .get_result(conn)
                    .optional()?;
                ::core::result::Result::Ok(stored.map(#from_tuple))
            }

            fn db_get(conn: &mut #conn, pk: &Self::Pk, lock: bool) -> #private::diesel::QueryResult<::core::option::Option<Self>> {
                #traits
                let query = #table::table.find(pk).select(#select);
                let stored: ::core::option::Option<#row_ty> = #lock.optional()?;
                ::core::result::Result::Ok(stored.map(#from_tuple))
            }

            fn db_delete(conn: &mut #conn, pk: &Self::Pk) -> #private::diesel::QueryResult<::core::option::Option<Self>> {
                #traits
                let stored: ::core::option::Option<#row_ty> = #private::diesel::delete(#table::table.find(pk))
                    .returning(#select)
                    .get_result(conn)
                    .optional()?;
                ::core::result::Result::Ok(stored.map(#from_tuple))
            }

            fn db_page(
                conn: &mut #conn,
                filters: ::std::vec::Vec<#boxed>,
                after: ::core::option::Option<&Self::Pk>,
                limit: i64,
            ) -> #private::diesel::QueryResult<::std::vec::Vec<Self>> {
                #traits
                let mut query = #table::table
                    .select(#select)
                    .order(#pk_col.asc())
                    .limit(limit)
                    .into_boxed();
                for filter in filters {
                    query = query.filter(filter);
                }
                if let ::core::option::Option::Some(after) = after {
                    query = query.filter(#pk_col.gt(after));
                }
                let stored: ::std::vec::Vec<#row_ty> = query.load(conn)?;
                ::core::result::Result::Ok(stored.into_iter().map(#from_tuple).collect())
            }

            fn db_count(conn: &mut #conn, filters: ::std::vec::Vec<#boxed>) -> #private::diesel::QueryResult<i64> {
                #traits
                let mut query = #table::table.select(#private::diesel::dsl::count_star()).into_boxed();
                for filter in filters {
                    query = query.filter(filter);
                }
                query.get_result(conn)
            }

        #latest

            fn db_existing(conn: &mut #conn, pks: &[Self::Pk]) -> #private::diesel::QueryResult<::std::vec::Vec<Self::Pk>> {
                #traits
                let mut found = ::std::vec::Vec::with_capacity(pks.len());
                for chunk in pks.chunks(#private::KEY_CHUNK) {
                    found.extend(#table::table.filter(#pk_col.eq_any(chunk)).select(#pk_col).load::<Self::Pk>(conn)?);
                }
                ::core::result::Result::Ok(found)
            }

            #instance_data

            #lookup
        }
    }
}

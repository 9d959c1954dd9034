//! Unit tests of the derives: errors reported together, and snapshots of the expansion (with
//! insta and prettyplease, as diesel_derives does), so that a change to the generated code
//! shows in review. Re-bless with `INSTA_UPDATE=always cargo test -p cqrs-derive`, then read the diff.

use quote::quote;

use crate::{derive_master_inner, derive_replica_inner};

fn expand_master(input: proc_macro2::TokenStream) -> Result<String, String> {
    let input: syn::DeriveInput = syn::parse2(input).map_err(|e| e.to_string())?;
    crate::master::expand(&input)
        .map(|tokens| tokens.to_string())
        .map_err(|e| e.into_compile_error().to_string())
}

#[test]
fn every_error_is_reported_in_one_build() {
    let errors = expand_master(quote! {
        #[diesel(table_name = books)]
        #[cqrs(cqrs_id = "book", fields(nope), tracked_fields(zilch))]
        struct Book { id: i32, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }
    })
    .unwrap_err();
    assert!(errors.contains("names no field `nope`"), "{errors}");
    assert!(errors.contains("names no field `zilch`"), "{errors}");
    assert!(
        errors.contains("must include the primary key `id`"),
        "{errors}"
    );
}

#[test]
fn generated_code_uses_absolute_paths_and_both_backends() {
    let code = expand_master(quote! {
        #[diesel(table_name = books)]
        #[cqrs(cqrs_id = "book")]
        struct Book { id: i32, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }
    })
    .unwrap();
    assert!(code.contains(":: cqrs_core :: __private :: with_sqlite !"));
    assert!(code.contains(":: cqrs_core :: __private :: with_postgres !"));
    assert!(code.contains("automatically_derived"));
    assert!(code.contains("const _ : () ="));
    assert!(!code.contains("serde_json ::") || code.contains("__private :: serde_json"));
}

#[test]
fn backends_limit_the_generated_impls() {
    let code = expand_master(quote! {
        #[diesel(table_name = books)]
        #[cqrs(cqrs_id = "book", backends(postgres))]
        struct Book { id: i32, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }
    })
    .unwrap();
    assert!(!code.contains("with_sqlite"));
    assert!(code.contains("PgConnection"));
}

/// The expansion, formatted: the backend gates (`with_sqlite! { ... }`, a hidden macro of
/// core that prettyplease cannot look into) are shown as `mod with_sqlite { ... }`, so that
/// what they hold is formatted too and a change to it reads as a diff.
fn pretty(tokens: &proc_macro2::TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(mut file) => {
            unwrap_gates(&mut file.items);
            prettyplease::unparse(&file)
        }
        Err(error) => format!("unparsable expansion: {error}\n{tokens}"),
    }
}

/// The `mod` a backend gate's content is shown in, if `mac` is one.
fn gate_module(mac: &syn::Macro) -> Option<syn::Item> {
    let name = mac.path.segments.last()?.ident.clone();
    if name != "with_sqlite" && name != "with_postgres" {
        return None;
    }
    let mut inner: syn::File = syn::parse2(mac.tokens.clone()).ok()?;
    unwrap_gates(&mut inner.items);
    let items = inner.items;
    Some(syn::parse_quote!(mod #name { #(#items)* }))
}

fn unwrap_gates(items: &mut [syn::Item]) {
    for item in items {
        match item {
            syn::Item::Macro(m) => {
                if let Some(module) = gate_module(&m.mac) {
                    *item = module;
                }
            }
            syn::Item::Const(c) => {
                if let syn::Expr::Block(block) = &mut *c.expr {
                    for stmt in &mut block.block.stmts {
                        match stmt {
                            syn::Stmt::Item(inner) => unwrap_gates(std::slice::from_mut(inner)),
                            syn::Stmt::Macro(m) => {
                                if let Some(module) = gate_module(&m.mac) {
                                    *stmt = syn::Stmt::Item(module);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

macro_rules! snapshot {
    ($name:ident, $inner:ident, { $($input:tt)* }) => {
        #[test]
        fn $name() {
            let input = quote! { $($input)* };
            let output = pretty(&$inner(input.clone()));
            insta::with_settings!({
                description => input.to_string(),
                omit_expression => true,
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(stringify!($name), output);
            });
        }
    };
}

snapshot!(master_minimal, derive_master_inner, {
    #[diesel(table_name = books)]
    #[cqrs(cqrs_id = "book")]
    struct Book {
        id: i32,
        title: String,
        cqrs_revision: i32,
        cqrs_updated: DateTime<Utc>,
    }
});

// `serializer` is left out: it excludes `fields`, `rename` and `skip` (UI cases pin that).
snapshot!(master_every_attribute, derive_master_inner, {
    #[diesel(table_name = books, primary_key(isbn))]
    #[cqrs(
        cqrs_id = "book",
        fields(isbn, title, price),
        produce = true,
        sync_filter = Book::is_published,
        tracked_fields(title),
        meta = Book::meta,
        correlation_id = Book::correlation_id,
        delete_data = Book::delete_data,
        backends(sqlite),
        crate = "::cqrs_core"
    )]
    struct Book {
        isbn: String,
        #[cqrs(rename = "name")]
        title: String,
        price: Option<f64>,
        #[cqrs(skip)]
        notes: String,
        #[diesel(column_name = rev)]
        cqrs_revision: i32,
        cqrs_updated: NaiveDateTime,
    }
});

snapshot!(replica_minimal, derive_replica_inner, {
    #[diesel(table_name = book_refs)]
    #[cqrs(cqrs_id = "book")]
    struct BookRef {
        id: i32,
        title: String,
        cqrs_revision: i32,
        cqrs_updated: DateTime<Utc>,
    }
});

snapshot!(replica_every_attribute, derive_replica_inner, {
    #[diesel(table_name = titles)]
    #[cqrs(
        cqrs_id = "book",
        mapping(id = id, title = name),
        custom_hooks,
        only_direct_syncs,
        select_for_update,
        meta,
        backends(postgres)
    )]
    struct Title {
        id: i32,
        name: String,
        #[cqrs(default)]
        stars: i32,
        #[cqrs(skip)]
        local_note: Option<String>,
        cqrs_revision: i32,
        cqrs_updated: DateTime<Utc>,
    }
});

snapshot!(master_invalid_emits_the_fallback, derive_master_inner, {
    #[diesel(table_name = books)]
    #[cqrs(cqrs_id = "book", fields(nope))]
    struct Book {
        id: i32,
        cqrs_revision: i32,
        cqrs_updated: DateTime<Utc>,
    }
});

snapshot!(replica_invalid_emits_the_fallback, derive_replica_inner, {
    #[diesel(table_name = book_refs)]
    #[cqrs(cqrs_id = "book", unknown_key)]
    struct BookRef {
        id: i32,
        cqrs_revision: i32,
        cqrs_updated: DateTime<Utc>,
    }
});

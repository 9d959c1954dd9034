//! `#[handler(...)]`: registers a function as an event, command or call handler. Parses and
//! emits; what the consumer does around it lives in `cqrs_core::event`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Type};

use crate::internals::attr::key_of;
use crate::internals::ctxt::Ctxt;
use crate::internals::symbol::{
    CHECK_EXPIRED_AFTER, CRATE, DEFAULT, EXCHANGE, HANDLER_KEYS, INBOX, ROUTING_KEY, list,
};

struct Args {
    exchange: Option<String>,
    routing_key: String,
    default: bool,
    inbox: bool,
    check_expired_after: bool,
    krate: syn::Path,
}

/// Parses the handler's arguments with the model derives' rules: each key once, an unknown
/// key named with the valid ones, every error on the user's tokens. `item` spans the errors
/// of an attribute without arguments.
fn parse_args(attr: TokenStream, item: &ItemFn) -> syn::Result<Args> {
    let cx = Ctxt::new();
    let mut args = Args {
        exchange: None,
        routing_key: String::new(),
        default: false,
        inbox: false,
        check_expired_after: false,
        krate: syn::parse_quote!(::cqrs_core),
    };
    let mut seen = std::collections::BTreeSet::new();
    // the later of `default` and `exchange`, for the error that they exclude each other
    let mut conflict: Option<syn::Path> = None;
    let whole = attr.clone();
    let parser = syn::meta::parser(|meta| {
        let key = key_of(&meta);
        if !HANDLER_KEYS.contains(&key.as_str()) {
            return Err(meta.error(format!(
                "unknown handler argument `{key}`, expected one of {}",
                list(HANDLER_KEYS)
            )));
        }
        if !seen.insert(key.clone()) {
            cx.error_spanned_by(
                &meta.path,
                format!("duplicate handler argument `{key}`; remove one of them"),
            );
        }
        match key.as_str() {
            DEFAULT | INBOX | CHECK_EXPIRED_AFTER => {
                if meta.input.peek(syn::Token![=]) {
                    return Err(meta.error(format!(
                        "`{key}` is a flag: write `{key}`\nhelp: the correct format looks like `#[handler({key})]`"
                    )));
                }
                match key.as_str() {
                    DEFAULT => {
                        args.default = true;
                        if args.exchange.is_some() {
                            conflict = Some(meta.path.clone());
                        }
                    }
                    INBOX => args.inbox = true,
                    _ => args.check_expired_after = true,
                }
            }
            _ => {
                let text: LitStr = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!(
                            "`{key}` takes a string\nhelp: the correct format looks like `#[handler({key} = \"...\")]`"
                        ),
                    )
                })?;
                match key.as_str() {
                    EXCHANGE => {
                        if text.value().is_empty() || text.value() == "*" {
                            cx.error_spanned_by(
                                &text,
                                "the exchange may not be empty or `*` (use `default` for a default handler)",
                            );
                        }
                        args.exchange = Some(text.value());
                        if args.default {
                            conflict = Some(meta.path.clone());
                        }
                    }
                    ROUTING_KEY => args.routing_key = text.value(),
                    CRATE => match text.parse() {
                        Ok(path) => args.krate = path,
                        Err(error) => cx.syn_error(error),
                    },
                    _ => {}
                }
            }
        }
        Ok(())
    });
    // a syntax error stops the parse: the arguments after it are unknown, not missing
    let parsed = parser.parse2(attr);
    let complete = parsed.is_ok();
    if let Err(error) = parsed {
        cx.syn_error(error);
    }
    if let Some(path) = conflict {
        cx.error_spanned_by(
            path,
            "a `default` handler takes every unrouted message: it has no `exchange`",
        );
    } else if complete && args.exchange.is_none() && !args.default {
        let message = "a handler needs `exchange = \"...\"` (and optionally `routing_key`), or `default`\nhelp: the correct format looks like `#[handler(exchange = \"order\", routing_key = \"paid\")]`";
        if whole.is_empty() {
            cx.error_spanned_by(&item.sig.ident, message);
        } else {
            cx.error_spanned_by(whole, message);
        }
    }
    cx.check()?;
    Ok(args)
}

/// The `T` of a `&mut T` argument.
fn connection_type(arg: Option<&FnArg>, item: &ItemFn) -> syn::Result<Type> {
    if let Some(FnArg::Typed(pat)) = arg
        && let Type::Reference(r) = &*pat.ty
        && r.mutability.is_some()
    {
        return Ok((*r.elem).clone());
    }
    Err(syn::Error::new(
        arg.map_or_else(|| item.sig.inputs.span(), Spanned::span),
        "the handler's first argument must be the connection: `conn: &mut SqliteConnection` (or `PgConnection`)",
    ))
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item)?;
    let args = parse_args(attr, &item)?;
    let mut inputs = item.sig.inputs.iter();
    let conn = connection_type(inputs.next(), &item)?;
    let message = match (inputs.next(), inputs.next()) {
        (Some(FnArg::Typed(pat)), None) => (*pat.ty).clone(),
        (_, extra) => {
            return Err(syn::Error::new(
                extra.map_or_else(|| item.sig.inputs.span(), Spanned::span),
                "a handler takes two arguments: the connection and the message (`Event<P>`, `Command<A>`, `Call<D>`, `CallResponse<D>` or `Incoming`)",
            ));
        }
    };
    if let Some(asyncness) = item.sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a handler runs in a database transaction on a worker thread: it may not be `async`",
        ));
    }
    let krate = &args.krate;
    let name = &item.sig.ident;
    let exchange = args.exchange.unwrap_or_else(|| "*".to_owned());
    let routing_key = &args.routing_key;
    let inbox = args.inbox;
    let check_expired_after = args.check_expired_after;
    let registration = |conn: &Type, suffix: &str, call: TokenStream| {
        let run = syn::Ident::new(&format!("__cqrs_handler_{name}{suffix}"), name.span());
        quote! {
            #[doc(hidden)]
            #[allow(non_snake_case)]
            fn #run(
                conn: &mut #conn,
                incoming: &#krate::event::Incoming,
            ) -> ::core::result::Result<::core::option::Option<#krate::__private::serde_json::Value>, #krate::event::HandlerError> {
                let message = <#message as #krate::event::FromIncoming>::from_incoming(incoming)?;
                let out = #call(conn, message)?;
                #krate::event::__private::answer::<#message, _>(out)
            }

            #krate::__private::inventory::submit! {
                #krate::event::HandlerEntry::<#conn> {
                    name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                    exchange: #exchange,
                    routing_key: #routing_key,
                    kind: <#message as #krate::event::FromIncoming>::KIND,
                    inbox: #inbox,
                    check_expired_after: #check_expired_after,
                    run: #run,
                }
            }
        }
    };
    if generic_connection(&item, &conn)? {
        // `fn h<C: CqrsConnection>(conn: &mut C, ...)`: one registration per backend cqrs-core
        // was built with.
        let sqlite: Type = syn::parse_quote!(#krate::__private::SqliteConnection);
        let postgres: Type = syn::parse_quote!(#krate::__private::PgConnection);
        let on_sqlite = registration(&sqlite, "_sqlite", quote!(#name::<#sqlite>));
        let on_postgres = registration(&postgres, "_postgres", quote!(#name::<#postgres>));
        return Ok(quote! {
            #item
            #krate::__private::with_sqlite! { #on_sqlite }
            #krate::__private::with_postgres! { #on_postgres }
        });
    }
    let registered = registration(&conn, "", quote!(#name));
    Ok(quote! {
        #item
        #registered
    })
}

/// True when the connection is the function's one type parameter (`fn h<C>(conn: &mut C, ...)`);
/// an error for any other generics, which the consumer could not name.
fn generic_connection(item: &ItemFn, conn: &Type) -> syn::Result<bool> {
    let generics = &item.sig.generics;
    if generics.params.is_empty() {
        return Ok(false);
    }
    let types: Vec<&syn::TypeParam> = generics.type_params().collect();
    if let ([param], Type::Path(path)) = (types.as_slice(), conn)
        && generics.params.len() == 1
        && path.qself.is_none()
        && path.path.is_ident(&param.ident)
    {
        return Ok(true);
    }
    Err(syn::Error::new(
        generics.span(),
        "a handler's only generic parameter is its connection: `fn handle<C: CqrsConnection>(conn: &mut C, ...)`",
    ))
}

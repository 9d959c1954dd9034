//! Parsing of `#[cqrs(...)]` and the parts of `#[diesel(...)]` the derives need.

use std::collections::BTreeSet;

use proc_macro2::TokenTree;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Token};

use super::ctxt::Ctxt;
use super::symbol::{self as sym, list};

/// Which derive is parsing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Master,
    Replica,
}

impl Kind {
    pub(crate) fn derive_name(self) -> &'static str {
        match self {
            Self::Master => "CqrsMaster",
            Self::Replica => "CqrsReplica",
        }
    }

    fn container_keys(self) -> &'static [&'static str] {
        match self {
            Self::Master => sym::MASTER_KEYS,
            Self::Replica => sym::REPLICA_KEYS,
        }
    }

    fn field_keys(self) -> &'static [&'static str] {
        match self {
            Self::Master => sym::MASTER_FIELD_KEYS,
            Self::Replica => sym::REPLICA_FIELD_KEYS,
        }
    }
}

/// A flag attribute (`custom_hooks` or `custom_hooks = true`) with the tokens for spans.
#[derive(Clone)]
pub(crate) struct Flag {
    pub(crate) path: syn::Path,
    pub(crate) value: bool,
}

/// A backend named in `backends(...)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(ident: &Ident) -> Option<Self> {
        if ident == sym::SQLITE {
            Some(Self::Sqlite)
        } else if ident == sym::POSTGRES {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Container attributes.
#[derive(Default)]
pub(crate) struct Container {
    pub(crate) cqrs_id: Option<LitStr>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) backends: Option<Vec<Backend>>,
    // master
    pub(crate) fields: Option<(syn::Path, Vec<Ident>)>,
    pub(crate) produce: Option<Flag>,
    pub(crate) sync_filter: Option<syn::ExprPath>,
    pub(crate) tracked_fields: Option<(syn::Path, Tracked)>,
    pub(crate) serializer: Option<(syn::Path, syn::ExprPath)>,
    pub(crate) relate: Option<(syn::Path, syn::ExprPath)>,
    pub(crate) meta_fn: Option<syn::ExprPath>,
    pub(crate) correlation_id: Option<syn::ExprPath>,
    pub(crate) delete_data: Option<syn::ExprPath>,
    // replica
    pub(crate) mapping: Option<(syn::Path, Vec<(Ident, Ident)>)>,
    pub(crate) custom_serialization: Option<Flag>,
    pub(crate) custom_hooks: Option<Flag>,
    pub(crate) only_direct_syncs: Option<Flag>,
    pub(crate) select_for_update: Option<Flag>,
    pub(crate) meta_flag: Option<Flag>,
    // diesel
    pub(crate) table_name: Option<syn::Path>,
    pub(crate) primary_key: Option<Vec<Ident>>,
    /// An attribute failed to parse: later "missing" errors would only be noise.
    pub(crate) had_error: bool,
}

/// What `tracked_fields` names.
pub(crate) enum Tracked {
    /// `tracked_fields = "__all__"`: every field of the struct but the skipped ones
    /// (django-cqrs's `ALL_BASIC_FIELDS`).
    All,
    /// `tracked_fields(a, b)`.
    List(Vec<Ident>),
}

/// Field attributes.
#[derive(Default)]
pub(crate) struct Field {
    pub(crate) rename: Option<LitStr>,
    pub(crate) skip: Option<Flag>,
    pub(crate) default: Option<Flag>,
    pub(crate) column_name: Option<Ident>,
}

/// The key of a nested attribute: its path's segments, joined with `::`.
pub(crate) fn key_of(meta: &ParseNestedMeta<'_>) -> String {
    let segments: Vec<String> = meta
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments.join("::")
}

/// Records `key` as seen; reports a duplicate on its second occurrence.
fn first_time(
    cx: &Ctxt,
    seen: &mut BTreeSet<String>,
    meta: &ParseNestedMeta<'_>,
    key: &str,
) -> bool {
    if seen.insert(key.to_owned()) {
        true
    } else {
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate cqrs attribute `{key}`; remove one of them"),
        );
        false
    }
}

fn parse_flag(meta: &ParseNestedMeta<'_>) -> syn::Result<Flag> {
    let value = if meta.input.peek(Token![=]) {
        let value = meta.value()?;
        let expr: syn::Expr = value.parse()?;
        match expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Bool(lit),
                ..
            }) => lit.value,
            other => {
                let key = key_of(meta);
                return Err(syn::Error::new(
                    other.span(),
                    format!(
                        "`{key}` is a flag: write `{key}` or `{key} = false`\nhelp: the correct format looks like `#[cqrs({key})]`"
                    ),
                ));
            }
        }
    } else {
        true
    };
    Ok(Flag {
        path: meta.path.clone(),
        value,
    })
}

fn parse_idents(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Vec<Ident>> {
    let mut idents = Vec::new();
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{key}` takes a list of fields\nhelp: the correct format looks like `#[cqrs({key}(id, title))]`"
        )));
    }
    meta.parse_nested_meta(|inner| {
        let Some(ident) = inner.path.get_ident() else {
            return Err(inner.error("expected a field name"));
        };
        if !inner.input.is_empty() && !inner.input.peek(Token![,]) {
            return Err(inner.error(format!(
                "expected a field name\nhelp: the correct format looks like `#[cqrs({key}(id, title))]`"
            )));
        }
        idents.push(ident.clone());
        Ok(())
    })?;
    Ok(idents)
}

fn parse_path_value(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<syn::ExprPath> {
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!(
            "`{key}` takes a function path\nhelp: the correct format looks like `#[cqrs({key} = Self::my_function)]`"
        )));
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse();
    }
    value.parse()
}

fn parse_str_value(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!(
            "`{key}` takes a string\nhelp: the correct format looks like `#[cqrs({key} = \"...\")]`"
        )));
    }
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(lit),
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "`{key}` must be a string literal\nhelp: the correct format looks like `#[cqrs({key} = \"...\")]`"
            ),
        )),
    }
}

fn unknown(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    level: &str,
    kind: Kind,
    valid: &[&str],
) -> syn::Error {
    meta.error(format!(
        "unknown {level}key `{key}` in #[cqrs(...)] for #[derive({})]; expected one of: {}",
        kind.derive_name(),
        list(valid)
    ))
}

impl Container {
    pub(crate) fn from_ast(cx: &Ctxt, kind: Kind, input: &syn::DeriveInput) -> Self {
        let mut out = Self::default();
        let mut seen = BTreeSet::new();
        for attr in &input.attrs {
            let result = if attr.path().is_ident(sym::CQRS) {
                attr.parse_nested_meta(|meta| out.parse_cqrs(cx, kind, &mut seen, &meta))
            } else if attr.path().is_ident(sym::DIESEL) {
                attr.parse_nested_meta(|meta| out.parse_diesel(&meta))
            } else {
                Ok(())
            };
            if let Err(err) = result {
                out.had_error = true;
                cx.syn_error(err);
            }
        }
        out
    }

    #[allow(clippy::too_many_lines, reason = "one arm per container key")]
    fn parse_cqrs(
        &mut self,
        cx: &Ctxt,
        kind: Kind,
        seen: &mut BTreeSet<String>,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<()> {
        let key = key_of(meta);
        if !kind.container_keys().contains(&key.as_str()) {
            // Report and go on, so that the keys after it are still read.
            cx.syn_error(unknown(meta, &key, "", kind, kind.container_keys()));
            return skip_value(meta.input);
        }
        let fresh = first_time(cx, seen, meta, &key);
        match key.as_str() {
            sym::CQRS_ID => {
                let lit = parse_str_value(meta, sym::CQRS_ID)?;
                if lit.value().trim().is_empty() {
                    cx.error_spanned_by(&lit, "`cqrs_id` must not be empty");
                }
                if fresh {
                    self.cqrs_id = Some(lit);
                }
            }
            sym::CRATE => {
                let lit = parse_str_value(meta, sym::CRATE)?;
                let path = lit.parse::<syn::Path>()?;
                if fresh {
                    self.krate = Some(path);
                }
            }
            sym::BACKENDS => {
                let idents = parse_idents(meta, sym::BACKENDS)?;
                let mut backends = Vec::with_capacity(idents.len());
                for ident in &idents {
                    match Backend::of(ident) {
                        Some(backend) => backends.push(backend),
                        None => cx.error_spanned_by(
                            ident,
                            "unknown backend; expected `sqlite` or `postgres`",
                        ),
                    }
                }
                if fresh {
                    self.backends = Some(backends);
                }
            }
            sym::FIELDS => {
                let idents = parse_idents(meta, sym::FIELDS)?;
                if fresh {
                    self.fields = Some((meta.path.clone(), idents));
                }
            }
            sym::TRACKED_FIELDS => {
                let tracked = if meta.input.peek(Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value() != "__all__" {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "`tracked_fields = \"...\"` takes only \"__all__\" (every field)\nhelp: list fields as `#[cqrs(tracked_fields(title, price))]`",
                        ));
                    }
                    Tracked::All
                } else {
                    Tracked::List(parse_idents(meta, sym::TRACKED_FIELDS)?)
                };
                if fresh {
                    self.tracked_fields = Some((meta.path.clone(), tracked));
                }
            }
            sym::PRODUCE => {
                let flag = parse_flag(meta)?;
                if fresh {
                    self.produce = Some(flag);
                }
            }
            sym::SYNC_FILTER => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.sync_filter = Some(path);
                }
            }
            sym::SERIALIZER => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.serializer = Some((meta.path.clone(), path));
                }
            }
            sym::RELATE => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.relate = Some((meta.path.clone(), path));
                }
            }
            sym::CORRELATION_ID => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.correlation_id = Some(path);
                }
            }
            sym::DELETE_DATA => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.delete_data = Some(path);
                }
            }
            sym::META if kind == Kind::Master => {
                let path = parse_path_value(meta, &key)?;
                if fresh {
                    self.meta_fn = Some(path);
                }
            }
            sym::META => {
                let flag = parse_flag(meta)?;
                if fresh {
                    self.meta_flag = Some(flag);
                }
            }
            sym::MAPPING => {
                let pairs = parse_mapping(meta)?;
                if fresh {
                    self.mapping = Some((meta.path.clone(), pairs));
                }
            }
            sym::CUSTOM_SERIALIZATION
            | sym::CUSTOM_HOOKS
            | sym::ONLY_DIRECT_SYNCS
            | sym::SELECT_FOR_UPDATE => {
                let flag = parse_flag(meta)?;
                if fresh {
                    let slot = match key.as_str() {
                        sym::CUSTOM_SERIALIZATION => &mut self.custom_serialization,
                        sym::CUSTOM_HOOKS => &mut self.custom_hooks,
                        sym::ONLY_DIRECT_SYNCS => &mut self.only_direct_syncs,
                        _ => &mut self.select_for_update,
                    };
                    *slot = Some(flag);
                }
            }
            _ => skip_value(meta.input)?,
        }
        Ok(())
    }

    fn parse_diesel(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident(sym::TABLE_NAME) {
            self.table_name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident(sym::PRIMARY_KEY) {
            let mut keys = Vec::new();
            meta.parse_nested_meta(|inner| {
                if let Some(ident) = inner.path.get_ident() {
                    keys.push(ident.clone());
                }
                Ok(())
            })?;
            self.primary_key = Some(keys);
        } else {
            skip_value(meta.input)?;
        }
        Ok(())
    }

    pub(crate) fn flag(flag: Option<&Flag>) -> bool {
        flag.is_some_and(|f| f.value)
    }
}

fn parse_mapping(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<(Ident, Ident)>> {
    const HELP: &str = "help: the correct format looks like `#[cqrs(mapping(id = id, title = name))]` (master field = replica field)";
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`mapping` takes a list of `master = replica` pairs\n{HELP}"
        )));
    }
    let mut pairs = Vec::new();
    meta.parse_nested_meta(|inner| {
        let Some(master) = inner.path.get_ident() else {
            return Err(inner.error(format!("expected a master field name\n{HELP}")));
        };
        if !inner.input.peek(Token![=]) {
            return Err(inner.error(format!("expected `{master} = <replica field>`\n{HELP}")));
        }
        let replica: Ident = inner.value()?.parse()?;
        pairs.push((master.clone(), replica));
        Ok(())
    })?;
    Ok(pairs)
}

/// Consumes the value of an attribute we do not interpret (`= ...` or `(...)`).
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
    }
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

impl Field {
    pub(crate) fn from_ast(cx: &Ctxt, kind: Kind, field: &syn::Field) -> Self {
        let mut out = Self::default();
        let mut seen = BTreeSet::new();
        for attr in &field.attrs {
            if attr.path().is_ident(sym::CQRS) {
                let result = attr.parse_nested_meta(|meta| {
                    let key = key_of(&meta);
                    if !kind.field_keys().contains(&key.as_str()) {
                        return Err(unknown(&meta, &key, "field ", kind, kind.field_keys()));
                    }
                    let fresh = first_time(cx, &mut seen, &meta, &key);
                    match key.as_str() {
                        sym::RENAME => {
                            let lit = parse_str_value(&meta, sym::RENAME)?;
                            if fresh {
                                out.rename = Some(lit);
                            }
                        }
                        sym::SKIP => {
                            let flag = parse_flag(&meta)?;
                            if fresh {
                                out.skip = Some(flag);
                            }
                        }
                        _ => {
                            let flag = parse_flag(&meta)?;
                            if fresh {
                                out.default = Some(flag);
                            }
                        }
                    }
                    Ok(())
                });
                if let Err(err) = result {
                    cx.syn_error(err);
                }
            } else if attr.path().is_ident(sym::DIESEL) {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(sym::COLUMN_NAME) {
                        let value = meta.value()?;
                        out.column_name = Some(if value.peek(LitStr) {
                            let lit: LitStr = value.parse()?;
                            lit.parse()?
                        } else {
                            value.parse()?
                        });
                    } else {
                        skip_value(meta.input)?;
                    }
                    Ok(())
                });
                if let Err(err) = result {
                    cx.syn_error(err);
                }
            }
        }
        out
    }
}

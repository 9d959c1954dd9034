//! The checked model a derive emits code for.

use syn::{Ident, LitStr};

use super::attr::{self, Backend, Kind};
use super::ctxt::Ctxt;
use super::symbol as sym;

/// A model struct, with its attributes parsed.
pub(crate) struct Model<'a> {
    pub(crate) kind: Kind,
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: attr::Container,
    pub(crate) cqrs_id: LitStr,
    pub(crate) table: syn::Path,
    pub(crate) krate: syn::Path,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) pk: usize,
    pub(crate) revision: usize,
    pub(crate) updated: usize,
}

/// One struct field.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a syn::Type,
    pub(crate) attrs: attr::Field,
    /// The diesel column (`#[diesel(column_name)]` or the field name).
    pub(crate) column: Ident,
    /// The key in `instance_data` (master: `rename` or the field name).
    pub(crate) json_name: String,
    /// `T` when the field is `Option<T>`.
    pub(crate) option_inner: Option<&'a syn::Type>,
    /// `String` or `Option<String>`: text lookups apply.
    pub(crate) is_text: bool,
    /// A decimal type, whose lookups compare numbers whatever the column stores.
    pub(crate) decimal: Option<Decimal>,
    /// Whether lookups can be generated for the type.
    pub(crate) filterable: bool,
}

/// The decimal field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decimal {
    /// `BigDecimal` (a `Numeric` column).
    Big,
    /// `cqrs_core::types::DecimalText` (a `Text` column).
    Text,
}

impl Field<'_> {
    pub(crate) fn skipped(&self) -> bool {
        attr::Container::flag(self.attrs.skip.as_ref())
    }

    pub(crate) fn defaulted(&self) -> bool {
        attr::Container::flag(self.attrs.default.as_ref())
    }
}

impl<'a> Model<'a> {
    pub(crate) fn pk_field(&self) -> &Field<'a> {
        &self.fields[self.pk]
    }

    pub(crate) fn field(&self, ident: &Ident) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.ident == ident)
    }

    /// Whether code is emitted for a backend (`backends(...)`, default both).
    pub(crate) fn has_backend(&self, backend: Backend) -> bool {
        self.attrs
            .backends
            .as_ref()
            .is_none_or(|list| list.contains(&backend))
    }

    /// Parses and checks the input; every problem is recorded in `cx`.
    #[allow(
        clippy::too_many_lines,
        reason = "one pass over the container and its fields, in reading order"
    )]
    pub(crate) fn from_ast(cx: &Ctxt, kind: Kind, input: &'a syn::DeriveInput) -> Option<Self> {
        let named = match &input.data {
            syn::Data::Struct(syn::DataStruct {
                fields: syn::Fields::Named(named),
                ..
            }) => named,
            syn::Data::Struct(_) => {
                cx.error_spanned_by(
                    &input.ident,
                    format!(
                        "#[derive({})] needs a struct with named fields, one per table column",
                        kind.derive_name()
                    ),
                );
                return None;
            }
            syn::Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    format!(
                        "#[derive({})] only supports structs, not enums",
                        kind.derive_name()
                    ),
                );
                return None;
            }
            syn::Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    format!(
                        "#[derive({})] only supports structs, not unions",
                        kind.derive_name()
                    ),
                );
                return None;
            }
        };
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                format!(
                    "#[derive({})] does not support generic structs: a model maps one table",
                    kind.derive_name()
                ),
            );
        }
        let attrs = attr::Container::from_ast(cx, kind, input);
        let fields: Vec<Field<'a>> = named
            .named
            .iter()
            .filter_map(|field| {
                let ident = field.ident.as_ref()?;
                let attrs = attr::Field::from_ast(cx, kind, field);
                let option_inner = option_inner(&field.ty);
                let is_text = is_path(option_inner.unwrap_or(&field.ty), &["String"]);
                let decimal = if is_path(option_inner.unwrap_or(&field.ty), &["BigDecimal"]) {
                    Some(Decimal::Big)
                } else if is_path(option_inner.unwrap_or(&field.ty), &["DecimalText"]) {
                    Some(Decimal::Text)
                } else {
                    None
                };
                let filterable = !is_path(
                    option_inner.unwrap_or(&field.ty),
                    &["Vec", "Value", "Map", "HashMap", "BTreeMap"],
                );
                let json_name = attrs
                    .rename
                    .as_ref()
                    .map_or_else(|| unraw(ident), LitStr::value);
                let column = attrs.column_name.clone().unwrap_or_else(|| ident.clone());
                Some(Field {
                    ident,
                    ty: &field.ty,
                    attrs,
                    column,
                    json_name,
                    option_inner,
                    is_text,
                    decimal,
                    filterable,
                })
            })
            .collect();

        let Some(cqrs_id) = attrs.cqrs_id.clone() else {
            if attrs.had_error {
                return None;
            }
            cx.error_spanned_by(
                &input.ident,
                format!(
                    "missing #[cqrs(cqrs_id = \"...\")] on #[derive({})]\nhelp: add the model's stream id, shared with the other side: `#[cqrs(cqrs_id = \"book\")]`",
                    kind.derive_name()
                ),
            );
            return None;
        };
        let Some(table) = attrs.table_name.clone() else {
            if attrs.had_error {
                return None;
            }
            cx.error_spanned_by(
                &input.ident,
                "missing #[diesel(table_name = ...)]: the derive writes through the diesel table\nhelp: add `#[diesel(table_name = books)]` naming the `diesel::table!`",
            );
            return None;
        };
        let pk_ident = match &attrs.primary_key {
            Some(keys) if keys.len() == 1 => keys[0].clone(),
            Some(keys) => {
                cx.error_spanned_by(
                    keys.get(1).unwrap_or(&input.ident),
                    "composite primary keys are not supported: a CQRS row has one primary key",
                );
                return None;
            }
            None => Ident::new("id", input.ident.span()),
        };
        let Some(pk) = fields.iter().position(|f| *f.ident == pk_ident) else {
            cx.error_spanned_by(
                attrs.primary_key.as_ref().and_then(|k| k.first()).unwrap_or(&input.ident),
                format!(
                    "no field `{pk_ident}` for the primary key\nhelp: name the key field with `#[diesel(primary_key(your_key))]`"
                ),
            );
            return None;
        };
        let revision = required_field(cx, input, &fields, sym::REVISION_FIELD, "i32", |ty| {
            is_path(ty, &["i32"])
        })?;
        let updated = required_field(
            cx,
            input,
            &fields,
            sym::UPDATED_FIELD,
            "chrono::DateTime<chrono::Utc>` or `chrono::NaiveDateTime",
            is_timestamp,
        )?;
        let krate = attrs
            .krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::cqrs_core));
        Some(Self {
            kind,
            ident: &input.ident,
            attrs,
            cqrs_id,
            table,
            krate,
            fields,
            pk,
            revision,
            updated,
        })
    }
}

fn required_field(
    cx: &Ctxt,
    input: &syn::DeriveInput,
    fields: &[Field<'_>],
    name: &str,
    ty_name: &str,
    type_ok: impl Fn(&syn::Type) -> bool,
) -> Option<usize> {
    match fields.iter().position(|f| f.ident == name) {
        None => {
            cx.error_spanned_by(
                &input.ident,
                format!(
                    "missing field `{name}: {ty_name}`\nhelp: add the field (and its column): the framework keeps it for revision ordering"
                ),
            );
            None
        }
        Some(i) if !type_ok(fields[i].ty) => {
            cx.error_spanned_by(fields[i].ty, format!("`{name}` must be `{ty_name}`"));
            None
        }
        Some(i) => Some(i),
    }
}

fn last_segment(ty: &syn::Type) -> Option<&syn::PathSegment> {
    match ty {
        syn::Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    }
}

pub(crate) fn is_path(ty: &syn::Type, names: &[&str]) -> bool {
    last_segment(ty).is_some_and(|s| names.iter().any(|n| s.ident == n))
}

fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let segment = last_segment(ty)?;
    if segment.ident != "Option" {
        return None;
    }
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(inner) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

fn is_timestamp(ty: &syn::Type) -> bool {
    let Some(segment) = last_segment(ty) else {
        return false;
    };
    if segment.ident == "NaiveDateTime" {
        return true;
    }
    if segment.ident != "DateTime" {
        return false;
    }
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(inner) => is_path(inner, &["Utc"]),
            _ => false,
        },
        _ => false,
    }
}

/// The field name without a `r#` prefix.
pub(crate) fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    text.strip_prefix("r#").map_or(text.clone(), str::to_owned)
}

//! Cross-attribute rules, checked after parsing.

use std::collections::BTreeSet;

use syn::Ident;

use super::ast::Model;
use super::attr::{Container, Kind, Tracked};
use super::ctxt::Ctxt;
use super::symbol as sym;

pub(crate) fn check(cx: &Ctxt, model: &Model<'_>) {
    check_special_fields(cx, model);
    match model.kind {
        Kind::Master => check_master(cx, model),
        Kind::Replica => check_replica(cx, model),
    }
}

fn field_names(model: &Model<'_>) -> String {
    model
        .fields
        .iter()
        .map(|f| f.ident.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each entry names a field, once.
fn check_field_list(cx: &Ctxt, model: &Model<'_>, key: &str, idents: &[Ident]) {
    let mut seen = BTreeSet::new();
    for ident in idents {
        if model.field(ident).is_none() {
            cx.error_spanned_by(
                ident,
                format!(
                    "`{key}(...)` names no field `{ident}` of `{}`; fields: {}",
                    model.ident,
                    field_names(model)
                ),
            );
        } else if !seen.insert(ident.to_string()) {
            cx.error_spanned_by(ident, format!("`{ident}` is listed twice in `{key}(...)`"));
        }
    }
}

fn check_special_fields(cx: &Ctxt, model: &Model<'_>) {
    for index in [model.pk, model.revision, model.updated] {
        let field = &model.fields[index];
        if let Some(flag) = &field.attrs.skip {
            cx.error_spanned_by(
                &flag.path,
                format!(
                    "`{}` cannot be skipped: the framework needs it",
                    field.ident
                ),
            );
        }
        if let Some(flag) = &field.attrs.default {
            cx.error_spanned_by(
                &flag.path,
                format!(
                    "`{}` cannot take a default: every message carries it",
                    field.ident
                ),
            );
        }
    }
}

fn check_master(cx: &Ctxt, model: &Model<'_>) {
    let attrs = &model.attrs;
    if let Some((path, idents)) = &attrs.fields {
        check_field_list(cx, model, sym::FIELDS, idents);
        let pk = model.pk_field().ident;
        if !idents.iter().any(|i| i == pk) {
            cx.error_spanned_by(
                path,
                format!(
                    "`fields(...)` must include the primary key `{pk}`: replicas find rows by it\nhelp: add `{pk}` to the list"
                ),
            );
        }
        for ident in idents {
            if let Some(flag) = model.field(ident).and_then(|f| f.attrs.skip.as_ref()) {
                cx.error_spanned_by(
                    &flag.path,
                    format!("`{ident}` is both listed in `fields(...)` and skipped"),
                );
            }
        }
    }
    if let Some((_, Tracked::List(idents))) = &attrs.tracked_fields {
        check_field_list(cx, model, sym::TRACKED_FIELDS, idents);
    }
    if let (Some((relate, _)), None) = (&attrs.relate, &attrs.serializer) {
        cx.error_spanned_by(
            relate,
            "`relate` loads data for a custom serializer, and there is none\nhelp: add `serializer = path`, a function taking `(&Self, &Related)`",
        );
    }
    if let Some((serializer, _)) = &attrs.serializer {
        if attrs.fields.is_some() {
            cx.error_spanned_by(
                serializer,
                "`serializer` replaces the generated serialization, so `fields(...)` has no effect\nhelp: remove `fields(...)`, or remove `serializer`",
            );
        }
        for field in &model.fields {
            if let Some(rename) = &field.attrs.rename {
                cx.error_spanned_by(
                    rename,
                    "`rename` has no effect with a custom `serializer`: the serializer names the keys",
                );
            }
            if let Some(flag) = &field.attrs.skip {
                cx.error_spanned_by(
                    &flag.path,
                    "`skip` has no effect with a custom `serializer`: the serializer chooses the keys",
                );
            }
        }
    }
    let mut names = BTreeSet::new();
    for field in &model.fields {
        if !names.insert(field.json_name.clone()) {
            let span = field.attrs.rename.as_ref().map_or_else(
                || syn::Error::new_spanned(field.ident, "").span(),
                syn::LitStr::span,
            );
            cx.syn_error(syn::Error::new(
                span,
                format!(
                    "two fields are sent as `{}`; rename one of them",
                    field.json_name
                ),
            ));
        }
    }
}

fn check_replica(cx: &Ctxt, model: &Model<'_>) {
    let attrs = &model.attrs;
    let custom = Container::flag(attrs.custom_serialization.as_ref());
    if custom {
        if let Some(flag) = &attrs.custom_hooks {
            cx.error_spanned_by(
                &flag.path,
                "`custom_serialization` already means you write the hooks\nhelp: remove `custom_hooks`",
            );
        }
        for field in &model.fields {
            if let Some(flag) = &field.attrs.default {
                cx.error_spanned_by(
                    &flag.path,
                    "`default` has no effect with `custom_serialization`: your hooks build the row",
                );
            }
        }
    }
    let Some((path, pairs)) = &attrs.mapping else {
        return;
    };
    let mut targets = BTreeSet::new();
    let mut masters = BTreeSet::new();
    for (master, replica) in pairs {
        if !masters.insert(master.to_string()) {
            cx.error_spanned_by(master, format!("master field `{master}` is mapped twice"));
        }
        match model.field(replica) {
            None => cx.error_spanned_by(
                replica,
                format!(
                    "`mapping(...)` names no field `{replica}` of `{}`; fields: {}",
                    model.ident,
                    field_names(model)
                ),
            ),
            Some(field) if field.skipped() => cx.error_spanned_by(
                replica,
                format!("`{replica}` is skipped, so nothing can be mapped to it"),
            ),
            Some(_) => {
                if !targets.insert(replica.to_string()) {
                    cx.error_spanned_by(
                        replica,
                        format!("two master fields are mapped to `{replica}`"),
                    );
                }
            }
        }
    }
    let pk = model.pk_field().ident;
    if !targets.contains(&pk.to_string()) {
        cx.error_spanned_by(
            path,
            format!(
                "`mapping(...)` keeps only the fields it lists, so it must map the primary key `{pk}`\nhelp: add `{pk} = {pk}` (or `<master key field> = {pk}`)"
            ),
        );
    }
    if custom {
        return;
    }
    for (index, field) in model.fields.iter().enumerate() {
        let special = index == model.revision || index == model.updated || index == model.pk;
        if special || field.option_inner.is_some() || field.defaulted() || field.skipped() {
            continue;
        }
        if !targets.contains(&field.ident.to_string()) {
            cx.error_spanned_by(
                field.ident,
                format!(
                    "`{}` is required (not an `Option`) but `mapping(...)` never sets it\nhelp: map a master field to it, make it an `Option`, or mark it `#[cqrs(default)]`",
                    field.ident
                ),
            );
        }
    }
}

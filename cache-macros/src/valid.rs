//! Checks of `#[cached]` options against the function they annotate.

use syn::{Expr, ExprLit, ExprUnary, FnArg, Ident, ItemFn, Lit, Pat, Type, UnOp};

use crate::attr::{Attr, Errors};
use crate::template::Template;

/// One parameter of the annotated function.
pub(crate) struct Param {
    /// Its name, or a generated one for a destructuring pattern.
    pub(crate) name: Ident,
    /// Whether the user named it (an identifier pattern), so templates may use it.
    pub(crate) named: bool,
    pub(crate) ty: Type,
}

/// What `#[cached]` needs to know of the function's signature.
pub(crate) struct Signature {
    pub(crate) receiver: bool,
    pub(crate) params: Vec<Param>,
}

pub(crate) fn signature(item: &ItemFn) -> Signature {
    let mut receiver = false;
    let mut params = Vec::new();
    for (i, input) in item.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(_) => receiver = true,
            FnArg::Typed(typed) => {
                let (name, named) = match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() => (pat.ident.clone(), true),
                    _ => (quote::format_ident!("__cachette_arg{}", i), false),
                };
                params.push(Param {
                    name,
                    named,
                    ty: (*typed.ty).clone(),
                });
            }
        }
    }
    Signature { receiver, params }
}

/// Whether the function's computation can outlive its caller: no receiver,
/// no generics, and no parameter type that borrows (`&`, a lifetime) or hides
/// its type (`impl`, `dyn`). Such a function refreshes stale values in the
/// background.
pub(crate) fn owns_arguments(item: &ItemFn, sig: &Signature) -> bool {
    fn borrows(tokens: proc_macro2::TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Punct(p) => p.as_char() == '&' || p.as_char() == '\'',
            proc_macro2::TokenTree::Ident(i) => i == "impl" || i == "dyn",
            proc_macro2::TokenTree::Group(g) => borrows(g.stream()),
            proc_macro2::TokenTree::Literal(_) => false,
        })
    }
    !sig.receiver
        && item.sig.generics.params.is_empty()
        && !sig
            .params
            .iter()
            .any(|p| borrows(quote::ToTokens::to_token_stream(&p.ty)))
}

/// What the function returns, as far as caching is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// `Result<T, E>` (any path ending in `Result`): only `Ok` is cached.
    Result,
    /// `Option<T>`: `Some` is cached, `None` with `cache_none = true`.
    Option,
    /// Anything else: every value is cached.
    Value,
}

pub(crate) fn returns(item: &ItemFn) -> Returns {
    let syn::ReturnType::Type(_, ty) = &item.sig.output else {
        return Returns::Value;
    };
    let Type::Path(path) = &**ty else {
        return Returns::Value;
    };
    match path.path.segments.last() {
        Some(last) if last.ident == "Result" => Returns::Result,
        Some(last) if last.ident == "Option" => Returns::Option,
        _ => Returns::Value,
    }
}

/// Checks everything that can be checked before generating code.
pub(crate) fn check(
    item: &ItemFn,
    attr: &Attr,
    sig: &Signature,
    templates: &[&Template],
    errors: &mut Errors,
) {
    if item.sig.asyncness.is_none() {
        errors.spanned(
            item.sig.fn_token,
            "`#[cached]` caches the results of an `async fn`; make this function `async`",
        );
    }
    for name in &attr.skip {
        if !sig.params.iter().any(|p| p.named && p.name == *name) {
            errors.spanned(
                name,
                format!("`skip` names `{name}`, which is not an argument of this function"),
            );
        }
    }
    for template in templates {
        for placeholder in &template.placeholders {
            let root = &placeholder.root;
            let known = if root == "self" {
                sig.receiver
            } else {
                sig.params.iter().any(|p| p.named && p.name == *root)
            };
            if !known {
                errors.push(syn::Error::new(
                    root.span(),
                    format!("template names `{root}`, which is not an argument of this function"),
                ));
            }
        }
    }
    if let Some(flag) = &attr.cache_none
        && returns(item) != Returns::Option
    {
        errors.spanned(
            flag,
            "`cache_none` applies to functions that return `Option`",
        );
    }
    if let Some(timeout) = &attr.timeout {
        check_timeout(timeout, errors);
    }
}

fn check_seconds(int: &syn::LitInt, errors: &mut Errors) {
    if int.base10_parse::<u64>().is_err() {
        errors.spanned(
            int,
            "timeout seconds must be a whole number that fits in a `u64`",
        );
    }
}

/// Rejects timeouts that are wrong on sight: negative, a string, a float.
fn check_timeout(timeout: &Expr, errors: &mut Errors) {
    match timeout {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => check_seconds(int, errors),
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) if matches!(&**expr, Expr::Lit(_)) => {
            errors.spanned(timeout, "timeout must not be negative");
        }
        Expr::Lit(ExprLit { lit: Lit::Float(float), .. }) => errors.spanned(
            float,
            "timeout takes whole seconds; for fractions use a `Duration`, as in `Duration::from_millis(1500)`",
        ),
        Expr::Lit(ExprLit { lit, .. }) => errors.spanned(
            lit,
            "timeout takes seconds as an integer or a `Duration`, as in `timeout = 900`",
        ),
        _ => {}
    }
}

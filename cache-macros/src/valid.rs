//! Checks of `#[cached]` options against the function they annotate.

use syn::{Expr, ExprLit, ExprUnary, ItemFn, Lit, UnOp};

use crate::ast::{Returns, Signature};
use crate::attr::{Attr, Errors};
use crate::template::Template;

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
        && sig.returns != Returns::Option
    {
        errors.spanned(
            flag,
            "`cache_none` applies to functions that return `Option`",
        );
    }
    if let Some(hard) = &attr.hard_timeout
        && sig.returns != Returns::Result
    {
        errors.spanned(
            hard,
            "`hard_timeout` abandons the computation with an error: the function must return \
             `Result<T, E>` with `E: From<cachette::Error>`",
        );
    }
    if let Some(soft) = &attr.soft_timeout
        && !sig.owns_arguments
    {
        errors.spanned(
            soft,
            "`soft_timeout` lets the computation finish in the background: the function must own \
             its arguments (no `&`, receiver, lifetime, `impl`/`dyn` or generics)",
        );
    }
    if let Some(timeout) = &attr.timeout {
        check_timeout(timeout, errors);
        if attr.timeout_from.is_some() {
            errors.spanned(
                timeout,
                "`timeout_from` decides every entry's timeout: drop `timeout`",
            );
        }
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

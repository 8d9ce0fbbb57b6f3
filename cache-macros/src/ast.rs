//! The model of an annotated function that checks and expansion share:
//! its parameters, whether it has a receiver, what it returns, and whether
//! its computation owns its arguments — each computed once.

use syn::{FnArg, Ident, ItemFn, Pat, Type};

/// One parameter of the annotated function.
pub(crate) struct Param {
    /// Its name, or a generated one for a destructuring pattern.
    pub(crate) name: Ident,
    /// Whether the user named it (an identifier pattern), so templates may use it.
    pub(crate) named: bool,
    pub(crate) ty: Type,
}

/// What `#[cached]` needs to know of the function's signature, computed once.
pub(crate) struct Signature {
    pub(crate) receiver: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) returns: Returns,
    /// Whether the computation can outlive its caller (see [`owns_arguments`]).
    pub(crate) owns_arguments: bool,
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
    let mut sig = Signature {
        receiver,
        params,
        returns: returns(item),
        owns_arguments: false,
    };
    sig.owns_arguments = owns_arguments(item, &sig);
    sig
}

/// Whether the function's computation can outlive its caller: no receiver,
/// no generics, and no parameter type that borrows (`&`, a lifetime) or hides
/// its type (`impl`, `dyn`). Such a function refreshes stale values in the
/// background.
fn owns_arguments(item: &ItemFn, sig: &Signature) -> bool {
    let borrows = |token: &proc_macro2::TokenTree| match token {
        proc_macro2::TokenTree::Punct(p) => p.as_char() == '&' || p.as_char() == '\'',
        proc_macro2::TokenTree::Ident(i) => i == "impl" || i == "dyn",
        _ => false,
    };
    !sig.receiver
        && item.sig.generics.params.is_empty()
        && !sig.params.iter().any(|p| any_token(&p.ty, &borrows))
}

/// Whether `ty` names an `impl Trait`: a type the caller picks, which a
/// derived key hashes beside the argument.
pub(crate) fn hides_type(ty: &Type) -> bool {
    any_token(
        ty,
        &|token| matches!(token, proc_macro2::TokenTree::Ident(i) if i == "impl"),
    )
}

/// Whether any token of `ty`, inside groups too, is one `is` picks.
fn any_token(ty: &Type, is: &dyn Fn(&proc_macro2::TokenTree) -> bool) -> bool {
    fn walk(
        tokens: proc_macro2::TokenStream,
        is: &dyn Fn(&proc_macro2::TokenTree) -> bool,
    ) -> bool {
        tokens.into_iter().any(|token| match &token {
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), is),
            _ => is(&token),
        })
    }
    walk(quote::ToTokens::to_token_stream(ty), is)
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

fn returns(item: &ItemFn) -> Returns {
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

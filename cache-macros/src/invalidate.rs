//! Expanding `invalidate!`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprCall, ExprMethodCall, ExprPath, Ident, Path, Token};

use crate::attr::default_crate;
use crate::expand::companion_name;

/// What to drop.
enum Target {
    /// The entry of one call of a `#[cached]` function.
    Call(Expr),
    Namespace(Expr),
    Tag(Expr),
}

struct Input {
    target: Target,
    cache: Option<Expr>,
    krate: Option<Path>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let target = if (input.peek(Ident) || input.peek(Token![crate])) && input.peek2(Token![=]) {
            let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match name.to_string().as_str() {
                "namespace" => Target::Namespace(value),
                "tag" => Target::Tag(value),
                _ => return Err(syn::Error::new(name.span(), EXPECTED)),
            }
        } else {
            Target::Call(input.parse()?)
        };
        let mut parsed = Self {
            target,
            cache: None,
            krate: None,
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            input.parse::<Token![=]>()?;
            match name.to_string().as_str() {
                "cache" if parsed.cache.is_none() => parsed.cache = Some(input.parse()?),
                "crate" if parsed.krate.is_none() => parsed.krate = Some(input.parse()?),
                "cache" | "crate" => {
                    return Err(syn::Error::new(name.span(), format!("duplicate `{name}`")));
                }
                _ => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown `invalidate!` option `{name}`; expected `cache` or `crate`"
                        ),
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

const EXPECTED: &str = "expected a call of a `#[cached]` function, as in `invalidate!(user_order_stats(db, 42))`, \
                        or `namespace = \"...\"`, or `tag = \"...\"`";

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<Input>(input).and_then(|input| generate(&input)) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

fn generate(input: &Input) -> syn::Result<TokenStream> {
    let krate = input.krate.clone().unwrap_or_else(default_crate);
    let private = quote!(#krate::__private);
    let cache = match &input.cache {
        Some(cache) => quote!(#private::Option::Some(#private::IntoCache::into_cache(#cache))),
        None => quote!(#private::Option::None),
    };
    Ok(match &input.target {
        Target::Namespace(name) => {
            quote!(#private::invalidate_namespace(#private::cache_or_global(#cache), #name))
        }
        Target::Tag(tag) => {
            quote!(#private::invalidate_tag(#private::cache_or_global(#cache), #tag))
        }
        Target::Call(call) => {
            let key = companion_call(call)?;
            quote!(#private::invalidate_key(#key, #cache))
        }
    })
}

/// `f(a, b)` becomes `__cachette_key_f(a, b)`; `x.m(a)` becomes `x.__cachette_key_m(a)`.
fn companion_call(call: &Expr) -> syn::Result<TokenStream> {
    let refs = |args: &Punctuated<Expr, Token![,]>| args.to_token_stream();
    match call {
        Expr::Call(ExprCall { func, args, .. }) => {
            let Expr::Path(ExprPath {
                qself: None, path, ..
            }) = &**func
            else {
                return Err(syn::Error::new_spanned(func, EXPECTED));
            };
            let mut path = path.clone();
            let last = path.segments.last_mut().expect("a path has a segment");
            last.ident = companion_name(&last.ident);
            let args = refs(args);
            Ok(quote!(#path(#args)))
        }
        Expr::MethodCall(ExprMethodCall {
            receiver,
            method,
            turbofish,
            args,
            ..
        }) => {
            let method = companion_name(method);
            let args = refs(args);
            Ok(quote!(#receiver.#method #turbofish(#args)))
        }
        _ => Err(syn::Error::new_spanned(call, EXPECTED)),
    }
}

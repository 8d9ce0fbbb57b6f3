//! Parsing `#[cached(...)]` options.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitBool, LitStr, Path, Token};

/// Every option `#[cached]` accepts, in the order the docs list them.
pub(crate) const OPTIONS: &[&str] = &[
    "timeout",
    "timeout_from",
    "key",
    "namespace",
    "tags",
    "tags_from",
    "skip",
    "cache",
    "cache_none",
    "unless",
    "lock",
    "stale",
    "failover",
    "early",
    "jitter",
    "soft_timeout",
    "hard_timeout",
    "crate",
    "trait_impl",
    "batch",
];

/// The parsed options of one `#[cached]`.
#[derive(Default)]
pub(crate) struct Attr {
    pub(crate) timeout: Option<Expr>,
    pub(crate) timeout_from: Option<Expr>,
    pub(crate) key: Option<LitStr>,
    pub(crate) namespace: Option<LitStr>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) tags_from: Option<Expr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) unless: Option<Expr>,
    pub(crate) lock: Option<Expr>,
    pub(crate) stale: Option<Expr>,
    pub(crate) failover: Option<Expr>,
    pub(crate) early: Option<Expr>,
    pub(crate) jitter: Option<Expr>,
    pub(crate) soft_timeout: Option<Expr>,
    pub(crate) hard_timeout: Option<Expr>,
    pub(crate) krate: Option<Path>,
    pub(crate) trait_impl: bool,
    /// `batch`: the function loads many ids at once (`expand/batch.rs`).
    pub(crate) batch: Option<Path>,
}

/// Collects every error of one expansion, to report them all at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn into_result(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Attr {
    /// Parses the options; every problem lands in `errors` and parsing goes on.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut attr = Self::default();
        let mut seen: Vec<String> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let is_known = OPTIONS.contains(&name.as_str());
            if is_known && seen.contains(&name) {
                errors.spanned(&meta.path, format!("duplicate `{name}` option"));
            } else if is_known {
                seen.push(name.clone());
            }
            match name.as_str() {
                "timeout" => attr.timeout = Some(meta.value()?.parse()?),
                "timeout_from" => attr.timeout_from = Some(meta.value()?.parse()?),
                "key" => attr.key = Some(meta.value()?.parse()?),
                "namespace" => attr.namespace = Some(meta.value()?.parse()?),
                "tags" => {
                    let content;
                    let value = meta.value()?;
                    syn::bracketed!(content in value);
                    let tags = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                    attr.tags = tags.into_iter().collect();
                }
                "skip" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    attr.skip = names.into_iter().collect();
                }
                "tags_from" => attr.tags_from = Some(meta.value()?.parse()?),
                "cache" => attr.cache = Some(meta.value()?.parse()?),
                "cache_none" => attr.cache_none = Some(meta.value()?.parse()?),
                "unless" => attr.unless = Some(meta.value()?.parse()?),
                "lock" => attr.lock = Some(meta.value()?.parse()?),
                "stale" => attr.stale = Some(meta.value()?.parse()?),
                "failover" => attr.failover = Some(meta.value()?.parse()?),
                "early" => attr.early = Some(meta.value()?.parse()?),
                "jitter" => attr.jitter = Some(meta.value()?.parse()?),
                "soft_timeout" => attr.soft_timeout = Some(meta.value()?.parse()?),
                "hard_timeout" => attr.hard_timeout = Some(meta.value()?.parse()?),
                "crate" => attr.krate = Some(meta.value()?.parse()?),
                "trait_impl" => attr.trait_impl = true,
                "batch" => attr.batch = Some(meta.path.clone()),
                _ => {
                    let shown = quote::ToTokens::to_token_stream(&meta.path)
                        .to_string()
                        .replace(' ', "");
                    errors.spanned(
                        &meta.path,
                        format!(
                            "unknown `cached` option `{shown}`; expected one of: {}",
                            OPTIONS.join(", ")
                        ),
                    );
                    // Skip its value so the options after it are still read.
                    if meta.input.peek(Token![=]) {
                        meta.value()?.parse::<Expr>()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        let _skipped;
                        syn::parenthesized!(_skipped in meta.input);
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            errors.push(error);
        }
        attr
    }

    /// The crate path generated code names: `::cachette` unless `crate = ...`.
    pub(crate) fn krate(&self) -> Path {
        self.krate.clone().unwrap_or_else(default_crate)
    }
}

pub(crate) fn default_crate() -> Path {
    let mut path = Path::from(Ident::new("cachette", Span::call_site()));
    path.leading_colon = Some(Token![::](Span::call_site()));
    path
}

//! Generating the code of `#[cached]` (of `#[cached(batch)]` in `batch.rs`).

mod batch;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, Ident, ItemFn, Lit, Pat, ReturnType};

use crate::ast::{self, Returns, Signature};
use crate::attr::{Attr, Errors};
use crate::template::Template;
use crate::valid;

/// Expands `#[cached(args)] item`. On any error the function is emitted
/// unchanged beside the errors, so the rest of the crate still compiles.
pub(crate) fn cached(args: TokenStream, item: &TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let attr = Attr::parse(args, &mut errors);
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "`#[cached]` applies to an `async fn` with a body",
            ));
            return with_errors(item, errors);
        }
    };
    let key = attr
        .key
        .as_ref()
        .and_then(|lit| Template::parse(lit, &mut errors));
    let tags: Vec<Template> = attr
        .tags
        .iter()
        .filter_map(|lit| Template::parse(lit, &mut errors))
        .collect();
    let sig = ast::signature(&func);
    if attr.batch.is_some() {
        return batch::cached(&attr, &func, &sig, key.as_ref(), &tags, errors, item);
    }
    let templates: Vec<&Template> = key.iter().chain(&tags).collect();
    valid::check(&func, &attr, &sig, &templates, &mut errors);
    if let Err(error) = std::mem::take(&mut errors).into_result() {
        let mut errors = Errors::default();
        errors.push(error);
        return with_errors(item, errors);
    }
    Expansion {
        attr: &attr,
        func: &func,
        sig: &sig,
        key: key.as_ref(),
        tags: &tags,
    }
    .generate()
}

fn with_errors(item: &TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.into_result().err().map(|e| e.to_compile_error());
    quote!(#item #errors)
}

struct Expansion<'a> {
    attr: &'a Attr,
    func: &'a ItemFn,
    sig: &'a Signature,
    key: Option<&'a Template>,
    tags: &'a [Template],
}

impl Expansion<'_> {
    fn generate(&self) -> TokenStream {
        let func = self.func;
        let attrs = &func.attrs;
        let vis = &func.vis;
        let mut sig = func.sig.clone();
        let mut unpack = Vec::new();
        // Destructuring parameters get a name, so the key can read them whole.
        for (input, param) in sig
            .inputs
            .iter_mut()
            .filter(|i| matches!(i, FnArg::Typed(_)))
            .zip(&self.sig.params)
        {
            if let FnArg::Typed(typed) = input
                && !param.named
            {
                let pat = std::mem::replace(&mut *typed.pat, ident_pat(&param.name));
                let name = &param.name;
                unpack.push(quote!(let #pat = #name;));
            }
        }
        let key = self.key_statements(&key_var(), &self.refs());
        let fake_return = self.fake_return();
        let body = &func.block.stmts;
        let companion = (!self.attr.trait_impl).then(|| self.companion());
        let key_var = key_var();
        let call = self.call(
            &key_var,
            &quote! {
                async move {
                    #(#unpack)*
                    #fake_return
                    #(#body)*
                }
            },
        );
        quote! {
            #companion
            #(#attrs)*
            #vis #sig {
                #key
                #call
            }
        }
    }

    /// `::cachette::__private`, or the same under `crate = path`.
    fn private(&self) -> TokenStream {
        let krate = self.attr.krate();
        quote!(#krate::__private)
    }

    /// The runtime call, awaited, chosen by the return type and spanned at
    /// it so an uncacheable type is reported there.
    fn call(&self, key: &Ident, compute: &TokenStream) -> TokenStream {
        let private = self.private();
        let span = match &self.func.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => self.func.sig.ident.span(),
        };
        let timeout = self.timeout();
        let lease = self.lease();
        let policy = self.policy();
        // The function's site: where its figures are counted, once per function.
        let name = self.func.sig.ident.to_string();
        let name = name.trim_start_matches("r#");
        let site = quote! {{
            static __CACHETTE_SITE: #private::Site =
                #private::Site::new(#private::concat!(#private::module_path!(), "::", #name));
            &__CACHETTE_SITE
        }};
        let plan = quote!(#private::plan(#timeout, #lease, #site) #policy);
        let unless = match &self.attr.unless {
            Some(unless) => quote!(#unless),
            None => quote!(|_| false),
        };
        // What is stored of the outcome: all of it, its `Ok`, or its `Some`
        // (all of an `Option` with `cache_none`).
        let pick = match self.sig.returns {
            Returns::Value => quote!(#private::pick_value()),
            Returns::Result => quote!(#private::pick_ok()),
            Returns::Option if self.attr.cache_none.as_ref().is_some_and(|b| b.value) => {
                quote!(#private::pick_value())
            }
            Returns::Option => quote!(#private::pick_some()),
        };
        let pick = respan(pick, span);
        let pick = match &self.attr.tags_from {
            Some(tags) => quote_spanned!(tags.span()=> #pick.tags_from(#tags)),
            None => pick,
        };
        // The closure sees the stored value; what it returns is a timeout
        // (seconds, a `Duration`, an `Option<Duration>` or a `Timeout`).
        let pick = match &self.attr.timeout_from {
            Some(timeout) => quote_spanned!(timeout.span()=>
                #pick.timeout_from(|_, __cachette_value| #private::timeout_of(#timeout, __cachette_value))
            ),
            None => pick,
        };
        // An abandoned computation is reported as the function's `Err`.
        let pick = match &self.attr.hard_timeout {
            Some(hard) => quote_spanned!(hard.span()=>
                #pick.on_error(|error| #private::Err(#private::From::from(error)))
            ),
            None => pick,
        };
        let refreshes = self.attr.stale.is_some()
            || self.attr.early.is_some()
            || self.attr.soft_timeout.is_some();
        // With owned arguments the refresh of a stale value runs in the background.
        if refreshes && self.sig.owns_arguments {
            let call = respan(quote!(#private::call_detached), span);
            return quote_spanned!(span=> #call(#key, #plan, #unless, #compute, #pick).await);
        }
        // An in-process hit is served by `look`, before the call's future
        // (and the computation's) is built.
        let (look, call) = (
            respan(quote!(#private::look), span),
            respan(quote!(#private::call), span),
        );
        // The outcome's type is the function's: what the pick stores (and
        // the closures given to it) is inferred from it, as the computation's
        // outcome would tell.
        let outcome = match &self.func.sig.output {
            ReturnType::Type(_, ty) => quote!(#ty),
            ReturnType::Default => quote!(()),
        };
        quote_spanned! {span=>
            {
                let __cachette_plan = #plan;
                let __cachette_pick: #private::Pick<_, #outcome> = #pick;
                match #look(&#key, __cachette_plan, &__cachette_pick) {
                    #private::Ok(__cachette_hit) => __cachette_hit,
                    #private::Err(__cachette_past) => {
                        #call(#key, __cachette_plan, __cachette_past, #unless, #compute, __cachette_pick)
                            .await
                    }
                }
            }
        }
    }

    /// The freshness options, as calls on the plan: `.stale(..)`, `.failover(..)`, ...
    fn policy(&self) -> TokenStream {
        let attr = self.attr;
        let stale = attr
            .stale
            .as_ref()
            .map(|e| quote_spanned!(e.span()=> .stale(#e)));
        let failover = attr
            .failover
            .as_ref()
            .map(|e| quote_spanned!(e.span()=> .failover(#e)));
        let early = attr.early.as_ref().map(|e| match e {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(flag),
                ..
            }) if flag.value => quote!(.early(1.0)),
            Expr::Lit(ExprLit {
                lit: Lit::Bool(_), ..
            }) => quote!(),
            e => quote_spanned!(e.span()=> .early(#e)),
        });
        let jitter = attr
            .jitter
            .as_ref()
            .map(|e| quote_spanned!(e.span()=> .jitter(#e)));
        let soft = attr
            .soft_timeout
            .as_ref()
            .map(|e| quote_spanned!(e.span()=> .soft_timeout(#e)));
        let hard = attr
            .hard_timeout
            .as_ref()
            .map(|e| quote_spanned!(e.span()=> .hard_timeout(#e)));
        quote!(#stale #failover #early #jitter #soft #hard)
    }

    /// `lock = true` (the default lease), `lock = false`, or `lock = <Duration>`.
    fn lease(&self) -> TokenStream {
        let private = self.private();
        match &self.attr.lock {
            Some(Expr::Lit(ExprLit {
                lit: Lit::Bool(flag),
                ..
            })) if flag.value => {
                quote!(#private::Option::Some(#private::DEFAULT_LEASE))
            }
            None
            | Some(Expr::Lit(ExprLit {
                lit: Lit::Bool(_), ..
            })) => quote!(#private::Option::None),
            Some(lease) => quote_spanned!(lease.span()=> #private::Option::Some(#lease)),
        }
    }

    fn timeout(&self) -> TokenStream {
        let private = self.private();
        match &self.attr.timeout {
            None => quote!(#private::Timeout::Default),
            Some(Expr::Lit(ExprLit {
                lit: Lit::Int(secs),
                ..
            })) => {
                quote!(#private::Timeout::After(#private::Duration::from_secs(#secs)))
            }
            Some(expr) => quote_spanned!(expr.span()=> #private::IntoTimeout::into_timeout(#expr)),
        }
    }

    /// Statements declaring `var`, the call's `CallKey`, and writing its key
    /// where the key stays (built elsewhere and moved in, its inline text
    /// was copied whole on every call). `refs` binds every parameter to a
    /// reference under its own name, where they are not bound so already.
    fn key_statements(&self, var: &Ident, refs: &TokenStream) -> TokenStream {
        let private = self.private();
        let cache = match &self.attr.cache {
            // It may borrow from an argument the body then takes: the call
            // holds its own handle.
            Some(cache) if self.mentions_params(cache.to_token_stream()) => quote_spanned!(
                cache.span()=> #private::IntoCache::into_cache(#cache).into_owned()
            ),
            // It borrows nothing of the call's: the call borrows it.
            Some(cache) => quote_spanned!(cache.span()=> #private::IntoCache::into_cache(#cache)),
            None => quote!(#private::cache()),
        };
        let krate = self.attr.krate();
        let out = quote!(#var.key);
        let key = match self.key {
            Some(template) => template.render_into(&krate, &out),
            None => self.derived_key(&out),
        };
        let namespace = match &self.attr.namespace {
            Some(ns) => quote!(#private::Option::Some(#ns)),
            None => quote!(#private::Option::None),
        };
        let tags = self.tags.iter().map(|t| t.render(&krate));
        quote! {
            let mut #var: #private::CallKey<'_> = {
                #refs
                #private::CallKey::blank(
                    #cache,
                    #private::scope(#namespace, #private::vec![#(#tags),*]),
                )
            };
            {
                #refs
                #var.begin();
                #key
            }
        }
    }

    /// Writes the function's path and a digest of its key arguments to `out`.
    fn derived_key(&self, out: &TokenStream) -> TokenStream {
        let private = self.private();
        let builder = format_ident!("__cachette_key_builder", span = Span::mixed_site());
        let name = self.func.sig.ident.to_string();
        let name = name.trim_start_matches("r#");
        // What holds the function, from the name rustc gives a closure made
        // in it; first looked for: what follows that owner in the function
        // (its body a closure) and in the key's companion.
        let in_function = format!("::{name}::{{{{closure}}}}::{{{{closure}}}}");
        let in_companion = format!("::__cachette_key_{name}::{{{{closure}}}}");
        let start = quote!(#private::KeyBuilder::within(&|| (), [#in_function, #in_companion]));
        // The instances of a generic function never share keys: its type
        // and const arguments, and the types behind `impl Trait`, are hashed too.
        let generics = self
            .func
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                syn::GenericParam::Type(t) => {
                    let t = &t.ident;
                    Some(quote!(#builder.generic::<#t>();))
                }
                syn::GenericParam::Const(c) => {
                    let c = &c.ident;
                    Some(quote!(#builder.arg(&#c);))
                }
                syn::GenericParam::Lifetime(_) => None,
            });
        let args = self
            .sig
            .params
            .iter()
            .filter(|p| !self.attr.skip.contains(&p.name))
            .map(|p| {
                let name = &p.name;
                if ast::hides_type(&p.ty) {
                    quote_spanned!(p.ty.span()=> #builder.arg_typed(#name);)
                } else {
                    quote_spanned!(p.ty.span()=> #builder.arg(#name);)
                }
            });
        quote!({
            let mut #builder = #start;
            #(#generics)*
            #(#args)*
            #builder.finish(#name, &mut #out);
        })
    }

    /// Whether `tokens` name a parameter, or `self`.
    fn mentions_params(&self, tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(ident) => {
                ident == "self" || self.sig.params.iter().any(|p| p.name == ident)
            }
            TokenTree::Group(group) => self.mentions_params(group.stream()),
            _ => false,
        })
    }

    /// Rebinds every parameter to a reference under its own name, as the key block expects.
    fn refs(&self) -> TokenStream {
        let refs = self.sig.params.iter().map(|p| {
            let name = &p.name;
            quote!(#[allow(unused_variables)] let #name = &#name;)
        });
        quote!(#(#refs)*)
    }

    /// The hidden function `invalidate!` calls: the same parameters as the
    /// function (so it takes the same arguments, with the same coercions),
    /// returning the call's key.
    fn companion(&self) -> TokenStream {
        let private = self.private();
        let func = self.func;
        let vis = &func.vis;
        let name = companion_name(&func.sig.ident);
        let generics = &func.sig.generics;
        let where_clause = &generics.where_clause;
        let receiver = self.sig.receiver.then(|| quote!(&self,));
        let params = self.sig.params.iter().map(|p| {
            let (name, ty) = (&p.name, &p.ty);
            quote!(#name: #ty)
        });
        let var = key_var();
        let key = self.key_statements(&var, &self.refs());
        // The companion exists exactly when the function does.
        let cfgs = func.attrs.iter().filter(|a| a.path().is_ident("cfg"));
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
            #vis fn #name #generics (#receiver #(#params),*) -> #private::CallKey<'static> #where_clause {
                #key
                #var.into_owned()
            }
        }
    }

    /// Pins the type of the computation to the function's return type, so
    /// type errors in the body are reported as they would be without `#[cached]`.
    fn fake_return(&self) -> TokenStream {
        let (ty, span) = match &self.func.sig.output {
            ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
            ReturnType::Default => (quote!(()), self.func.sig.ident.span()),
        };
        let fake = format_ident!("__cachette_fake_return", span = Span::mixed_site());
        quote_spanned! {span=>
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                let #fake: #ty = loop {};
                return #fake;
            }
        }
    }
}

/// `__cachette_key_{name}`: the companion `invalidate!` calls for `name`.
pub(crate) fn companion_name(name: &Ident) -> Ident {
    let plain = name.to_string();
    format_ident!(
        "__cachette_key_{}",
        plain.trim_start_matches("r#"),
        span = name.span()
    )
}

/// The same tokens, every one at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

fn key_var() -> Ident {
    Ident::new("__cachette_call_key", Span::mixed_site())
}

fn ident_pat(name: &Ident) -> Pat {
    syn::parse_quote!(#name)
}

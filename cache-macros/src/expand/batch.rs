//! `#[cached(batch, key = "user:{id}")]` on `async fn users(ids: Vec<u64>)
//! -> HashMap<u64, User>`: each id is cached under the key a function of
//! that id alone would use (the template names one id, bound to each
//! element of the collection in turn), the ids without a fresh value are
//! computed by one call of the body, with the collection argument holding
//! exactly those ids.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{FnArg, Ident, ItemFn, ReturnType, Type};

use super::{Expansion, ident_pat, key_var, with_errors};
use crate::ast::Signature;
use crate::attr::{Attr, Errors};
use crate::template::Template;
use crate::valid;

/// What a batch function is made of, once checked.
struct Batch {
    /// The position of the collection among the parameters.
    param: usize,
    /// The id the key template names, bound to each element in turn.
    id: Ident,
    /// The collection is a slice (`&[K]`), not an owned collection.
    slice: bool,
}

/// Expands `#[cached(batch, ..)]`; on any error, the function unchanged
/// beside every error.
pub(super) fn cached(
    attr: &Attr,
    func: &ItemFn,
    sig: &Signature,
    key: Option<&Template>,
    tags: &[Template],
    mut errors: Errors,
    item: &TokenStream,
) -> TokenStream {
    // The templates are checked below: the key names an id, not an argument.
    valid::check(func, attr, sig, &[], &mut errors);
    let batch = check(attr, func, sig, key, tags, &mut errors);
    match (batch, errors.into_result()) {
        (Some(batch), Ok(())) => Expansion {
            attr,
            func,
            sig,
            key,
            tags,
        }
        .generate_batch(&batch),
        (_, result) => {
            let mut errors = Errors::default();
            if let Err(error) = result {
                errors.push(error);
            }
            with_errors(item, errors)
        }
    }
}

/// The options `batch` does not take.
const NOT_WITH_BATCH: &[&str] = &[
    "lock",
    "stale",
    "failover",
    "early",
    "tags_from",
    "unless",
    "cache_none",
    "trait_impl",
    "timeout_from",
    "soft_timeout",
    "hard_timeout",
];

fn check(
    attr: &Attr,
    func: &ItemFn,
    sig: &Signature,
    key: Option<&Template>,
    tags: &[Template],
    errors: &mut Errors,
) -> Option<Batch> {
    let flag = attr.batch.as_ref()?;
    let set = [
        attr.lock.is_some(),
        attr.stale.is_some(),
        attr.failover.is_some(),
        attr.early.is_some(),
        attr.tags_from.is_some(),
        attr.unless.is_some(),
        attr.cache_none.is_some(),
        attr.trait_impl,
        attr.timeout_from.is_some(),
        attr.soft_timeout.is_some(),
        attr.hard_timeout.is_some(),
    ];
    for (name, _) in NOT_WITH_BATCH.iter().zip(set).filter(|(_, set)| *set) {
        errors.spanned(
            flag,
            format!("`{name}` does not apply to a `batch` function"),
        );
    }
    if sig.receiver {
        errors.spanned(
            &func.sig.inputs,
            "`batch` applies to functions without `self`",
        );
    }
    let collections: Vec<(usize, bool)> = sig
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.named && !attr.skip.contains(&p.name))
        .filter_map(|(at, p)| collection(&p.ty).map(|slice| (at, slice)))
        .collect();
    let param = match collections.as_slice() {
        [one] => Some(*one),
        _ => {
            errors.spanned(
                &func.sig.ident,
                "a `batch` function takes one collection of ids: `Vec<K>`, `&[K]`, `HashSet<K>` or `BTreeSet<K>`",
            );
            None
        }
    };
    if !returns_map(&func.sig.output) {
        let message = "a `batch` function returns a map from id to value: `HashMap<K, V>` or `BTreeMap<K, V>`";
        match &func.sig.output {
            ReturnType::Type(_, ty) => errors.spanned(ty, message),
            ReturnType::Default => errors.spanned(&func.sig.ident, message),
        }
    }
    let Some(key) = key else {
        errors.spanned(
            flag,
            "`batch` needs a `key` template naming one id, as in `key = \"user:{id}\"`",
        );
        return None;
    };
    let (param, slice) = param?;
    let is_param = |name: &Ident| sig.params.iter().any(|p| p.named && p.name == *name);
    let collection = &sig.params[param].name;
    let mut ids = Vec::new();
    for placeholder in &key.placeholders {
        let root = &placeholder.root;
        if root == collection {
            errors.spanned(
                root,
                format!("the key names one id, not the collection `{collection}`, as in `key = \"user:{{id}}\"`"),
            );
        } else if !is_param(root) && !ids.contains(root) {
            ids.push(root.clone());
        }
    }
    let id = match ids.as_slice() {
        [id] => id.clone(),
        [] => {
            errors.spanned(
                flag,
                "the key of a `batch` function names one id, as in `key = \"user:{id}\"`",
            );
            return None;
        }
        [_, extra @ ..] => {
            for name in extra {
                errors.spanned(
                    name,
                    format!("template names `{name}`, which is not an argument of this function"),
                );
            }
            return None;
        }
    };
    check_tags(tags, &id, collection, &is_param, errors);
    Some(Batch { param, id, slice })
}

/// The tags of a batch function are the same for every id: they name
/// arguments other than the ids.
fn check_tags(
    tags: &[Template],
    id: &Ident,
    collection: &Ident,
    is_param: &dyn Fn(&Ident) -> bool,
    errors: &mut Errors,
) {
    for placeholder in tags.iter().flat_map(|t| &t.placeholders) {
        let root = &placeholder.root;
        if root == id || root == collection {
            errors.spanned(
                root,
                "the tags of a `batch` function are the same for every id: they may not name it",
            );
        } else if !is_param(root) {
            errors.spanned(
                root,
                format!("template names `{root}`, which is not an argument of this function"),
            );
        }
    }
}

/// `Some(true)` for `&[K]`, `Some(false)` for `Vec<K>`, `HashSet<K>`,
/// `BTreeSet<K>`, `None` for anything else.
fn collection(ty: &Type) -> Option<bool> {
    match ty {
        Type::Reference(reference) if matches!(&*reference.elem, Type::Slice(_)) => Some(true),
        Type::Path(path) => {
            let last = path.path.segments.last()?;
            ["Vec", "HashSet", "BTreeSet"]
                .iter()
                .any(|name| last.ident == name)
                .then_some(false)
        }
        _ => None,
    }
}

fn returns_map(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(path) = &**ty else {
        return false;
    };
    path.path
        .segments
        .last()
        .is_some_and(|last| last.ident == "HashMap" || last.ident == "BTreeMap")
}

impl Expansion<'_> {
    /// The function: the key of each id, then one call of the runtime,
    /// whose computation runs the body with the missing ids.
    fn generate_batch(&self, batch: &Batch) -> TokenStream {
        let private = self.private();
        let func = self.func;
        let attrs = &func.attrs;
        let vis = &func.vis;
        let sig = &func.sig;
        let refs = self.refs();
        let key_var = key_var();
        let key = self.key_statements(&key_var, &TokenStream::new());
        let fake_return = self.fake_return();
        let body = &func.block.stmts;
        let id = &batch.id;
        let collection = &self.sig.params[batch.param];
        let (name, ty) = (&collection.name, &collection.ty);
        let missing = Ident::new("__cachette_missing", Span::mixed_site());
        let keys = Ident::new("__cachette_keys", Span::mixed_site());
        let held = if batch.slice {
            quote!(let #name: #ty = &#missing[..];)
        } else {
            quote!(let #name: #ty = #private::FromIterator::from_iter(#missing);)
        };
        // Every other argument is cloned into each computation (references are copied).
        let others = self
            .sig
            .params
            .iter()
            .enumerate()
            .filter(|(at, _)| *at != batch.param)
            .map(|(_, p)| {
                let name = &p.name;
                quote!(#[allow(unused_variables)] let #name = #private::Clone::clone(&#name);)
            });
        // Destructuring parameters were given a name; their pattern is bound again.
        let mut unpack = Vec::new();
        let mut sig = sig.clone();
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
        let timeout = self.timeout();
        let name_text = func.sig.ident.to_string();
        let name_text = name_text.trim_start_matches("r#");
        let jitter = self.attr.jitter.as_ref().map(|e| quote!(.jitter(#e)));
        let site = format_ident!("__CACHETTE_SITE", span = Span::mixed_site());
        let plan = Ident::new("__cachette_plan", Span::mixed_site());
        let compute = Ident::new("__cachette_compute", Span::mixed_site());
        quote! {
            #(#attrs)*
            #vis #sig {
                let #keys = {
                    #refs
                    let mut #keys = #private::Vec::new();
                    for #id in #name.iter() {
                        #key
                        #keys.push((#private::Clone::clone(#id), #key_var));
                    }
                    #keys
                };
                let #plan = {
                    static #site: #private::Site =
                        #private::Site::new(#private::concat!(#private::module_path!(), "::", #name_text));
                    #private::plan(#timeout, #private::Option::None, &#site) #jitter
                };
                #[allow(clippy::redundant_clone)]
                let #compute = move |#missing: #private::Vec<_>| {
                    #(#others)*
                    async move {
                        #held
                        #(#unpack)*
                        #fake_return
                        #(#body)*
                    }
                };
                #private::call_batch(#keys, #plan, #compute).await
            }
        }
    }
}

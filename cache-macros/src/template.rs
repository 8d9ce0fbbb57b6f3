//! Key and tag templates: `"user_order_stats:{user_id}"`, `{user.id}`, `{filter:?}`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, LitStr, Token};

use crate::attr::Errors;

/// One `{...}` of a template.
pub(crate) struct Placeholder {
    /// The argument named first (`user` in `{user.id}`), spanned at its place in the string.
    pub(crate) root: Ident,
    pub(crate) fields: Vec<Ident>,
    pub(crate) debug: bool,
}

/// A parsed template: its literal text around the placeholders it renders
/// (`literals` has one more element than `placeholders`).
pub(crate) struct Template {
    literals: Vec<String>,
    pub(crate) placeholders: Vec<Placeholder>,
}

impl Template {
    /// Parses `lit`; every problem goes to `errors`, and `None` comes back.
    pub(crate) fn parse(lit: &LitStr, errors: &mut Errors) -> Option<Self> {
        let value = lit.value();
        let mut literals = Vec::new();
        let mut literal = String::with_capacity(value.len());
        let mut placeholders = Vec::new();
        let mut ok = true;
        let mut chars = value.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let Some(end) = value[at..].find('}').map(|i| at + i) else {
                        errors.push(syn::Error::new(
                            span_of(lit, at, value.len()),
                            "unclosed `{` in template; write `{{` for a literal brace",
                        ));
                        return None;
                    };
                    let inner = &value[at + 1..end];
                    match parse_placeholder(inner, span_of(lit, at + 1, end)) {
                        Ok(placeholder) => {
                            literals.push(std::mem::take(&mut literal));
                            placeholders.push(placeholder);
                        }
                        Err(message) => {
                            errors.push(syn::Error::new(span_of(lit, at, end + 1), message));
                            ok = false;
                        }
                    }
                    while chars.peek().is_some_and(|&(i, _)| i <= end) {
                        chars.next();
                    }
                }
                '}' => {
                    errors.push(syn::Error::new(
                        span_of(lit, at, at + 1),
                        "unmatched `}` in template; write `}}` for a literal brace",
                    ));
                    ok = false;
                }
                c => literal.push(c),
            }
        }
        literals.push(literal);
        ok.then_some(Self {
            literals,
            placeholders,
        })
    }

    /// An expression rendering the template to a `Cow<'static, str>`,
    /// reading the arguments by name: borrowed when it has no placeholder.
    pub(crate) fn render(&self, krate: &syn::Path) -> TokenStream {
        let private = quote!(#krate::__private);
        if self.placeholders.is_empty() {
            let text = self.literals.concat();
            return quote!(#private::Cow::Borrowed(#text));
        }
        let out = Ident::new("__cachette_tag", Span::mixed_site());
        let capacity = self.capacity();
        let steps = self.render_into(krate, &quote!(#out));
        quote! {{
            let mut #out = #private::String::with_capacity(#capacity);
            #steps
            #private::Cow::Owned(#out)
        }}
    }

    /// Room for the rendered template, most of the time: its text and 20
    /// bytes for each value.
    pub(crate) fn capacity(&self) -> usize {
        self.literals.iter().map(String::len).sum::<usize>() + 20 * self.placeholders.len()
    }

    /// Statements writing the template to `out` (a `String` or a call's
    /// key), reading the arguments by name. Integers and strings are written
    /// directly; other values through `Display` (or `Debug` for `{name:?}`),
    /// as `format!` would.
    pub(crate) fn render_into(&self, krate: &syn::Path, out: &TokenStream) -> TokenStream {
        let private = quote!(#krate::__private);
        let mut steps = Vec::new();
        for (literal, placeholder) in self
            .literals
            .iter()
            .zip(self.placeholders.iter().map(Some).chain([None]))
        {
            if !literal.is_empty() {
                steps.push(quote!(#out.push_str(#literal);));
            }
            let Some(p) = placeholder else { continue };
            let root = &p.root;
            let root = if root == "self" {
                let token = Token![self](root.span());
                quote!(#token)
            } else {
                quote!(#root)
            };
            let fields = &p.fields;
            let value = quote!(#root #(.#fields)*);
            let span = p.root.span();
            steps.push(if p.debug {
                quote::quote_spanned!(span=> #private::push_debug(&mut #out, &(#value));)
            } else {
                quote::quote_spanned!(span=> (&#private::Part(&(#value))).push_to(&mut #out);)
            });
        }
        quote! {
            #[allow(unused_imports)]
            use #private::{PartDisplay as _, PartFast as _};
            #(#steps)*
        }
    }
}

/// `name`, `name.field.field`, optionally followed by `:?`.
fn parse_placeholder(inner: &str, span: Span) -> Result<Placeholder, String> {
    let (path, debug) = match inner.split_once(':') {
        Some((path, "?")) => (path, true),
        Some((_, spec)) => {
            return Err(format!(
                "unsupported format `:{spec}` in template; use `{{name}}` (Display) or `{{name:?}}` (Debug)"
            ));
        }
        None => (inner, false),
    };
    let mut parts = path.split('.').map(str::trim);
    let root = parts.next().unwrap_or_default();
    if root.is_empty() {
        return Err("empty `{}` in template; name an argument, as in `{user_id}`".to_owned());
    }
    let root = ident(root, span).ok_or_else(|| format!("`{root}` is not an argument name"))?;
    let fields = parts
        .map(|field| ident(field, span).ok_or_else(|| format!("`{field}` is not a field name")))
        .collect::<Result<_, _>>()?;
    Ok(Placeholder {
        root,
        fields,
        debug,
    })
}

fn ident(name: &str, span: Span) -> Option<Ident> {
    if name == "self" {
        return Some(Ident::new("self", span));
    }
    syn::parse_str::<Ident>(name).ok().map(|mut ident| {
        ident.set_span(span);
        ident
    })
}

/// The span of bytes `start..end` of the string's value: exact where the
/// compiler can point inside literals, the whole literal elsewhere.
fn span_of(lit: &LitStr, start: usize, end: usize) -> Span {
    let token = lit.token();
    let repr = token.to_string();
    // Only a plain literal without escapes maps value offsets to source offsets.
    if repr.starts_with('"')
        && repr[1..repr.len() - 1] == lit.value()
        && let Some(span) = token.subspan((start + 1)..=end)
    {
        return span;
    }
    lit.span()
}

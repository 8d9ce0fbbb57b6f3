//! Expanding `refresh!`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Path, Token};

use crate::attr::default_crate;

struct Input {
    call: Expr,
    krate: Option<Path>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let call: Expr = input.parse()?;
        if !matches!(call, Expr::Call(_) | Expr::MethodCall(_)) {
            return Err(syn::Error::new_spanned(call, EXPECTED));
        }
        let mut krate = None;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            if name != "crate" {
                return Err(syn::Error::new(
                    name.span(),
                    format!("unknown `refresh!` option `{name}`; expected `crate`"),
                ));
            }
            input.parse::<Token![=]>()?;
            krate = Some(input.parse()?);
            input.parse::<Option<Token![,]>>()?;
        }
        Ok(Self { call, krate })
    }
}

const EXPECTED: &str =
    "expected a call of a `#[cached]` function, as in `refresh!(user_order_stats(&db, 42))`";

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<Input>(input) {
        Ok(Input { call, krate }) => {
            let krate = krate.unwrap_or_else(default_crate);
            quote!(#krate::__private::refresh(#call))
        }
        Err(error) => error.to_compile_error(),
    }
}

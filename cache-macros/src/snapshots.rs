//! Expansion snapshots: each case in `tests/expand/` is expanded with this
//! crate's own functions (no external tool), formatted with `prettyplease`,
//! and compared with its snapshot in `tests/expand/snapshots/` (`insta`;
//! `INSTA_UPDATE=always cargo test -p cachette-macros` writes them anew).

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Block, Expr, ImplItem, Item, Meta, Stmt};

/// Takes the `#[cached(..)]` attribute off `attrs`, returning its arguments.
fn take_cached(attrs: &mut Vec<Attribute>) -> Option<TokenStream> {
    let at = attrs.iter().position(|a| a.path().is_ident("cached"))?;
    match attrs.remove(at).meta {
        Meta::List(list) => Some(list.tokens),
        _ => Some(TokenStream::new()),
    }
}

/// Expands every `#[cached]` function among `items`, and every
/// `invalidate!` in the bodies of the others.
fn expand_items(items: Vec<Item>) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len());
    for mut item in items {
        match &mut item {
            Item::Fn(function) => {
                if let Some(args) = take_cached(&mut function.attrs) {
                    let expanded = crate::expand::cached(args, &function.to_token_stream());
                    let file: syn::File = syn::parse2(expanded).expect("the expansion parses");
                    out.extend(file.items);
                    continue;
                }
                expand_block(&mut function.block);
            }
            Item::Impl(block) => {
                let mut items = Vec::with_capacity(block.items.len());
                for mut member in std::mem::take(&mut block.items) {
                    if let ImplItem::Fn(method) = &mut member
                        && let Some(args) = take_cached(&mut method.attrs)
                    {
                        let expanded = crate::expand::cached(args, &method.to_token_stream());
                        let wrapped: syn::ItemImpl =
                            syn::parse2(quote::quote!(impl X { #expanded }))
                                .expect("the expansion parses as impl items");
                        items.extend(wrapped.items);
                    } else {
                        items.push(member);
                    }
                }
                block.items = items;
            }
            _ => {}
        }
        out.push(item);
    }
    out
}

fn expand_block(block: &mut Block) {
    for stmt in &mut block.stmts {
        match stmt {
            Stmt::Local(local) => {
                if let Some(init) = &mut local.init {
                    expand_expr(&mut init.expr);
                }
            }
            Stmt::Expr(expr, _) => expand_expr(expr),
            Stmt::Macro(mac) if mac.mac.path.is_ident("invalidate") => {
                let expanded = crate::invalidate::expand(mac.mac.tokens.clone());
                let expr: Expr = syn::parse2(expanded).expect("the expansion parses");
                *stmt = Stmt::Expr(expr, mac.semi_token);
            }
            _ => {}
        }
    }
}

/// Replaces `invalidate!(..)` in the expression shapes the cases use.
fn expand_expr(expr: &mut Expr) {
    match expr {
        Expr::Macro(mac) if mac.mac.path.is_ident("invalidate") => {
            let expanded = crate::invalidate::expand(mac.mac.tokens.clone());
            *expr = syn::parse2(expanded).expect("the expansion parses");
        }
        Expr::Await(awaited) => expand_expr(&mut awaited.base),
        Expr::MethodCall(call) => {
            expand_expr(&mut call.receiver);
            call.args.iter_mut().for_each(expand_expr);
        }
        Expr::Call(call) => call.args.iter_mut().for_each(expand_expr),
        Expr::Block(block) => expand_block(&mut block.block),
        _ => {}
    }
}

fn cases() -> (PathBuf, Vec<PathBuf>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/expand exists")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    cases.sort();
    (dir, cases)
}

#[test]
fn expansions_match_their_snapshots() {
    let (dir, cases) = cases();
    assert!(cases.len() >= 5, "the cases in {}", dir.display());
    for case in cases {
        let source = std::fs::read_to_string(&case).expect("a readable case");
        let mut file = syn::parse_file(&source).expect("the case parses");
        file.items = expand_items(std::mem::take(&mut file.items));
        let expanded = prettyplease::unparse(&file);
        let name = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name");
        insta::with_settings!({
            snapshot_path => dir.join("snapshots"),
            prepend_module_to_snapshot => false,
            input_file => &case,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, expanded);
        });
    }
}

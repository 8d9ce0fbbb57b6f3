//! The runtime's dependencies go one way (ARCHITECTURE.md): each top-level
//! module of `cache-runtime/src` may use only the modules below it in
//! [`LAYERS`], and within a folder no two files use each other, directly or
//! round a longer circle (a folder's `mod.rs` is its door, and may be used
//! by all of them). Read from the source: every `crate::…` and `super::…`
//! path outside comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The runtime's top-level modules, from the top: a module may use those
/// of later rows only. Modules of one row may not use each other.
const LAYERS: &[&[&str]] = &[
    &["internals", "http"],
    &["__private"],
    &["global"],
    &["builder"],
    &["cache"],
    &["engine"],
    &["options"],
    &["backend"],
    &["observe", "budget"],
    &["codec", "scope"],
    &["key", "clock", "error"],
];

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache-runtime/src")
}

/// Every `.rs` file under `dir`, as a path relative to `root`.
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root).unwrap().to_owned());
        }
    }
}

/// The code of a file without its comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every path that follows `prefix` (`crate::` or
/// `super::`), including each member of a `{…}` group.
fn heads(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices(prefix) {
        // `foo::crate::x` is not a path from the crate's root.
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut member = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(member.trim()));
                        member.clear();
                        continue;
                    }
                    _ => {}
                }
                member.push(c);
            }
            found.insert(ident(member.trim()));
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

/// The runtime's root re-exports (`pub use module::{Names}` in `lib.rs`):
/// which module a name at the root comes from.
fn root_names(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module: String = path.split("::").next().unwrap().to_owned();
        let members = path.split_once('{').map_or_else(
            || vec![path.rsplit("::").next().unwrap().trim_end_matches(';')],
            |(_, group)| group.trim_end_matches("};").split(',').collect(),
        );
        for member in members {
            let name = member.trim().rsplit("::").next().unwrap().trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), module.clone());
            }
        }
    }
    names
}

fn top(path: &Path) -> String {
    let first = path.components().next().unwrap();
    first
        .as_os_str()
        .to_str()
        .unwrap()
        .trim_end_matches(".rs")
        .to_owned()
}

#[test]
fn the_runtime_s_modules_use_only_the_layers_below_them() {
    let root = source();
    let mut all = Vec::new();
    files(&root, &root, &mut all);
    let rank: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(rank, row)| row.iter().map(move |module| (*module, rank)))
        .collect();
    let roots = root_names(&std::fs::read_to_string(root.join("lib.rs")).unwrap());
    let mut wrong = Vec::new();
    for file in &all {
        if file == Path::new("lib.rs") {
            continue;
        }
        let from = top(file);
        let Some(&from_rank) = rank.get(from.as_str()) else {
            wrong.push(format!(
                "{}: module `{from}` is in no layer",
                file.display()
            ));
            continue;
        };
        let text = code(&std::fs::read_to_string(root.join(file)).unwrap());
        for head in heads(&text, "crate::") {
            // A module's name is the module (`crate::cache::Cache`), even
            // where a root re-export has the same name (`crate::cache()`).
            let to = match roots.get(&head) {
                Some(module) if !rank.contains_key(head.as_str()) => module.clone(),
                _ => head,
            };
            if to == from {
                continue;
            }
            if let Some(&to_rank) = rank.get(to.as_str())
                && to_rank <= from_rank
            {
                wrong.push(format!("{}: `{from}` uses `{to}`", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_of_a_folder_use_each_other() {
    let root = source();
    let mut all = Vec::new();
    files(&root, &root, &mut all);
    // Each folder's files (a subfolder counts as one file: its name), and
    // which of their siblings each uses.
    let mut uses: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &all {
        let Some(folder) = file.parent().filter(|f| !f.as_os_str().is_empty()) else {
            continue;
        };
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "mod" {
            continue;
        }
        let text = code(&std::fs::read_to_string(root.join(file)).unwrap());
        let crate_path = format!("crate::{}::", folder.to_str().unwrap().replace('/', "::"));
        let mut siblings_used: BTreeSet<String> = heads(&text, "super::");
        siblings_used.extend(heads(&text, &crate_path));
        // Files one folder down reach their parent folder's siblings through `super::super::`.
        uses.entry(folder.to_owned())
            .or_default()
            .entry(name)
            .or_default()
            .extend(siblings_used);
        if let Some(parent) = folder.parent().filter(|p| !p.as_os_str().is_empty()) {
            let sub = folder.file_name().unwrap().to_str().unwrap().to_owned();
            let up = heads(&text, "super::super::");
            uses.entry(parent.to_owned())
                .or_default()
                .entry(sub)
                .or_default()
                .extend(up);
        }
    }
    let mut circles = Vec::new();
    for (folder, graph) in &uses {
        let siblings: BTreeSet<&String> = graph.keys().collect();
        // Depth-first search for a path back to where it started.
        for start in &siblings {
            let mut stack: Vec<(String, Vec<String>)> = vec![((*start).clone(), vec![])];
            let mut seen = BTreeSet::new();
            while let Some((at, trail)) = stack.pop() {
                for next in graph.get(&at).into_iter().flatten() {
                    if !siblings.contains(next) || next == &at {
                        continue;
                    }
                    let mut path = trail.clone();
                    path.push(next.clone());
                    if next == *start {
                        circles.push(format!(
                            "{}: {start} → {}",
                            folder.display(),
                            path.join(" → ")
                        ));
                    } else if seen.insert(next.clone()) {
                        stack.push((next.clone(), path));
                    }
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "circles between files:\n{}",
        circles.join("\n")
    );
}

//! The README's Rust examples are complete programs: they run as doctests
//! (the README is the crate's documentation) and compile as pasted, so none
//! of them may lean on rustdoc's hidden `# ` lines.

#[test]
fn readme_examples_have_no_hidden_lines() {
    let readme = include_str!("../README.md");
    let mut in_rust = false;
    let mut blocks = 0;
    for (number, line) in readme.lines().enumerate() {
        if let Some(fence) = line.strip_prefix("```") {
            in_rust = !in_rust && (fence == "rust" || fence.starts_with("rust,"));
            blocks += usize::from(in_rust);
            continue;
        }
        let hidden = line == "#" || line.starts_with("# ");
        assert!(
            !(in_rust && hidden),
            "README.md line {}: `{line}` is hidden by rustdoc and breaks a pasted copy",
            number + 1
        );
    }
    assert!(blocks >= 4, "the README's Rust examples: {blocks}");
}

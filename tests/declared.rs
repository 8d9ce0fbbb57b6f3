//! Every test file in `tests/` is declared as a test in a manifest: the
//! packages list their tests (so that the files keep their paths), and a
//! file left out would silently never run.

use std::path::Path;

#[test]
fn every_test_file_is_declared() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    // Each manifest, and how it names a file of this folder.
    let manifests = [
        (read(&dir.join("Cargo.toml")), ""),          // cachette-tests
        (read(&dir.join("../Cargo.toml")), "tests/"), // the root package (cli.rs)
        (read(&dir.join("ui/Cargo.toml")), "../"),    // cachette-ui-tests (ui.rs)
    ];
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let declared = manifests
            .iter()
            .any(|(text, prefix)| text.contains(&format!("path = \"{prefix}{name}\"")));
        if !declared {
            missing.push(name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "test files no manifest declares (add a [[test]] to tests/Cargo.toml): {missing:?}"
    );
}

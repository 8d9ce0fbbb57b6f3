//! Every key a script touches is declared in `KEYS`: each `redis.call` or
//! `redis.pcall` names its keys as `KEYS[n]`, `unpack(KEYS)`, a loop
//! variable bound by `ipairs(KEYS)` (never assigned), or a parameter of a
//! local function whose every caller passes one of those. A cluster routes
//! a script by its `KEYS`, and servers such as Dragonfly refuse a script
//! that touches a key it did not declare. Read from the scripts as they are
//! sent (`scripts::sources`), and every `.lua` file of this folder is one of
//! them or the prelude.

use super::scripts::sources;

/// Where a command's keys are: its first argument, or every argument.
#[derive(Clone, Copy)]
enum Keys {
    First,
    All,
}

/// The commands scripts may send, and where their keys are. A command not
/// listed fails the check: say where its keys are first.
const COMMANDS: &[(&str, Keys)] = &[
    ("GET", Keys::First),
    ("SET", Keys::First),
    ("INCR", Keys::First),
    ("INCRBY", Keys::First),
    ("PEXPIRE", Keys::First),
    ("PERSIST", Keys::First),
    ("PTTL", Keys::First),
    ("TYPE", Keys::First),
    ("EXISTS", Keys::All),
    ("DEL", Keys::All),
];

/// A script's tokens: names, numbers, strings (with their quotes) and
/// punctuation (`==`, `~=`, `<=`, `>=` and `..` as one); comments dropped.
fn tokens(script: &str) -> Vec<String> {
    let chars: Vec<char> = script.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(chars[start..i.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            let pair: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if matches!(pair.as_str(), "==" | "~=" | "<=" | ">=" | "..") {
                out.push(pair);
                i += 2;
            } else {
                out.push(c.to_string());
                i += 1;
            }
        }
    }
    out
}

/// The arguments of the call whose `(` is at `open`, split at top-level
/// commas, and the index of its `)`.
fn arguments(tokens: &[String], open: usize) -> (Vec<&[String]>, usize) {
    let (mut depth, mut start, mut args) = (0_usize, open + 1, Vec::new());
    for (at, token) in tokens.iter().enumerate().skip(open) {
        match token.as_str() {
            "(" | "{" | "[" => depth += 1,
            ")" | "}" | "]" => {
                depth -= 1;
                if depth == 0 {
                    if at > start {
                        args.push(&tokens[start..at]);
                    }
                    return (args, at);
                }
            }
            "," if depth == 1 => {
                args.push(&tokens[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    (args, tokens.len())
}

/// A local function: its name, parameters and the tokens of its body.
struct Function {
    name: String,
    params: Vec<String>,
    body: std::ops::Range<usize>,
}

/// The local functions of a script (`local function name(params) … end`).
fn functions(tokens: &[String]) -> Vec<Function> {
    let mut found = Vec::new();
    for at in 0..tokens.len() {
        if tokens[at] != "function" || at == 0 || tokens[at - 1] != "local" {
            continue;
        }
        let Some(name) = tokens.get(at + 1) else {
            continue;
        };
        let (params, close) = arguments(tokens, at + 2);
        found.push(Function {
            name: name.clone(),
            params: params.iter().map(|p| p.concat()).collect(),
            body: close..block_end(tokens, close + 1),
        });
    }
    found
}

/// The index of the `end` that closes the block opened just before `from`.
fn block_end(tokens: &[String], from: usize) -> usize {
    // Blocks that close with `end`: functions, `if`, and `do` (of `for`, `while`).
    let mut depth = 1;
    for (i, token) in tokens.iter().enumerate().skip(from) {
        match token.as_str() {
            "function" | "if" | "do" => depth += 1,
            "end" => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// A loop variable over the keys: its name, and the tokens of the loop's body.
type KeyLoop = (String, std::ops::Range<usize>);

/// The loops `for _, name in ipairs(KEYS) do … end`.
fn key_loops(tokens: &[String]) -> Vec<KeyLoop> {
    (0..tokens.len().saturating_sub(9))
        .filter(|&at| {
            let w = &tokens[at..at + 10];
            w[0] == "for"
                && w[2] == ","
                && w[4] == "in"
                && w[5] == "ipairs"
                && w[6] == "("
                && w[7] == "KEYS"
                && w[8] == ")"
                && w[9] == "do"
        })
        .map(|at| (tokens[at + 3].clone(), at + 9..block_end(tokens, at + 10)))
        .collect()
}

/// Whether `arg`, at `at`, names declared keys without help from a
/// parameter: `KEYS[n]`, `unpack(KEYS)`, or a loop variable over `KEYS`.
fn declared(arg: &[String], at: usize, loops: &[KeyLoop]) -> bool {
    match arg {
        [a, b, c, d] => {
            (a == "KEYS" && b == "[" && c.parse::<u32>().is_ok() && d == "]")
                || (a == "unpack" && b == "(" && c == "KEYS" && d == ")")
        }
        [name] => loops
            .iter()
            .any(|(n, body)| n == name && body.contains(&at)),
        _ => false,
    }
}

/// What is wrong with the keys of one script: nothing when empty.
fn undeclared(script: &str) -> Vec<String> {
    let tokens = tokens(script);
    let functions = functions(&tokens);
    let loops = key_loops(&tokens);
    let mut wrong = Vec::new();
    // A loop variable over `KEYS` stays one in its loop: never assigned,
    // nor bound again.
    for (name, body) in &loops {
        let is = |at: usize, want: &str| tokens.get(at).is_some_and(|t| t == want);
        for at in body.clone() {
            let assigned = tokens[at] == *name && is(at + 1, "=");
            let rebound = match tokens[at].as_str() {
                "local" => is(at + 1, name),
                "for" => is(at + 1, name) || (is(at + 2, ",") && is(at + 3, name)),
                "function" => {
                    let (params, _) = arguments(&tokens, at + 2);
                    params.iter().any(|p| p.concat() == *name)
                }
                _ => false,
            };
            if assigned || rebound {
                wrong.push(format!("`{name}`, a key, is assigned or bound again"));
                break;
            }
        }
    }
    // Whether `arg`, inside the body at `at`, names declared keys; a
    // parameter of the function around it does when every caller passes keys.
    let names_keys = |arg: &[String], at: usize| {
        if declared(arg, at, &loops) {
            return true;
        }
        let [name] = arg else { return false };
        functions.iter().any(|f| {
            let Some(index) = f.params.iter().position(|p| p == name) else {
                return false;
            };
            f.body.contains(&at)
                && (0..tokens.len())
                    .filter(|&i| tokens[i] == f.name && tokens.get(i + 1).is_some_and(|t| t == "("))
                    .filter(|&i| i == 0 || tokens[i - 1] != "function")
                    .all(|i| {
                        let (args, _) = arguments(&tokens, i + 1);
                        args.get(index).is_some_and(|a| declared(a, i, &loops))
                    })
        })
    };
    for at in 0..tokens.len() {
        let is_call = tokens[at] == "redis"
            && tokens.get(at + 1).is_some_and(|t| t == ".")
            && tokens
                .get(at + 2)
                .is_some_and(|t| t == "call" || t == "pcall");
        if !is_call {
            continue;
        }
        if tokens.get(at + 3).is_none_or(|t| t != "(") {
            wrong.push(format!("redis.{} not called directly", tokens[at + 2]));
            continue;
        }
        let (args, _) = arguments(&tokens, at + 3);
        let command = match args.first() {
            Some([name]) if name.starts_with(['\'', '"']) => {
                name.trim_matches(['\'', '"']).to_ascii_uppercase()
            }
            _ => {
                wrong.push("a command whose name is not a string literal".to_owned());
                continue;
            }
        };
        let Some((_, keys)) = COMMANDS.iter().find(|(name, _)| *name == command) else {
            wrong.push(format!("{command}: where its keys are is not known here"));
            continue;
        };
        let key_args = match keys {
            Keys::First => args.get(1..2).unwrap_or(&[]),
            Keys::All => args.get(1..).unwrap_or(&[]),
        };
        if key_args.is_empty() {
            wrong.push(format!("{command} without a key"));
        }
        for arg in key_args {
            if !names_keys(arg, at) {
                wrong.push(format!(
                    "{command} on `{}`, not a key of KEYS",
                    arg.concat()
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_script_declares_every_key_it_touches() {
    for (name, script) in sources() {
        assert_eq!(undeclared(&script), Vec::<String>::new(), "{name}.lua");
        assert!(!script.starts_with("#!"), "{name}.lua: no shebang flags");
    }
}

#[test]
fn every_lua_file_is_a_script_checked_here() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/backend/server");
    let names: Vec<&str> = sources().iter().map(|(name, _)| *name).collect();
    let prelude = include_str!("prelude.lua");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| path.extension().is_some_and(|e| e == "lua"))
        else {
            continue;
        };
        seen += 1;
        if stem == "prelude" {
            // Checked within every script that starts with it.
            let first = prelude.lines().next().unwrap();
            assert!(sources().iter().any(|(_, s)| s.starts_with(first)));
            continue;
        }
        assert!(names.contains(&stem), "{stem}.lua is not among the scripts");
    }
    assert_eq!(seen, names.len() + 1, "every script is a .lua file here");
}

#[test]
fn keys_from_argv_literals_or_local_functions_fail_the_check() {
    let prelude = "local function set_with_ttl(key, value, ttl)\n\
                   if ttl == '0' then redis.call('SET', key, value) end\n\
                   end\n";
    let bad = [
        "return redis.call('GET', ARGV[1])",
        "return redis.call('GET', 'literal')",
        "return redis.pcall('DEL', KEYS[1], ARGV[1])",
        "return redis.call('GET', KEYS[1] .. ':x')",
        "return redis.call('GET', KEYS[i])",
        "for _, key in ipairs(ARGV) do redis.call('DEL', key) end",
        "for _, key in ipairs(KEYS) do key = ARGV[1]; redis.call('DEL', key) end",
        "for _, key in ipairs(KEYS) do local key = ARGV[1]; redis.call('DEL', key) end",
        "for _, key in ipairs(KEYS) do end\nredis.call('DEL', key)",
        "local call = redis.call\nreturn call('GET', ARGV[1])",
        "return redis.call(ARGV[1], KEYS[1])",
        "return redis.call('HGET', KEYS[1], 'f')",
        "return redis.call('DEL', unpack(ARGV))",
        &format!("{prelude}set_with_ttl(ARGV[1], ARGV[2], '0')"),
        &format!("{prelude}set_with_ttl(KEYS[1], 1, '0')\nset_with_ttl('other', 1, '0')"),
        "local key = 'x'\nreturn redis.call('GET', key) -- a local, not a parameter",
        // A parameter named like a loop variable elsewhere is still checked.
        &format!("{prelude}for _, key in ipairs(KEYS) do end\nset_with_ttl(ARGV[1], 1, '0')"),
    ];
    for script in bad {
        assert_ne!(undeclared(script), Vec::<String>::new(), "passed: {script}");
    }
    let good = [
        "return redis.call('GET', KEYS[1])",
        "return redis.call(\"del\", KEYS[1], KEYS[2])",
        "for _, key in ipairs(KEYS) do redis.call('GET', key) end\nredis.call('DEL', unpack(KEYS))",
        &format!("{prelude}set_with_ttl(KEYS[1], ARGV[1], ARGV[2])"),
        "-- redis.call('GET', ARGV[1]) in a comment\nreturn redis.call('GET', KEYS[1])",
    ];
    for script in good {
        assert_eq!(undeclared(script), Vec::<String>::new(), "{script}");
    }
}

//! The Lua scripts of the Redis backend, one `.lua` file each. Every script
//! that must see a tombstone as absent starts with `prelude.lua`. Each keeps
//! its atomicity by touching one key, except the multi-key delete. Every key
//! a script touches comes in `KEYS` (a cluster routes by them, and servers
//! such as Dragonfly refuse undeclared keys): `script_keys.rs` holds it.

use deadpool_redis::redis::Script;

use crate::codec;

/// The scripts, with the envelope's constants filled in.
pub(super) struct Scripts {
    pub(super) delete_if_equal: Script,
    pub(super) write_guarded: Script,
    pub(super) add: Script,
    pub(super) touch: Script,
    pub(super) incr: Script,
    pub(super) delete: Script,
    pub(super) bump: Script,
    pub(super) contains: Script,
    pub(super) ttl: Script,
    pub(super) live: Script,
    pub(super) extend_lease: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let [
            delete_if_equal,
            write_guarded,
            add,
            touch,
            incr,
            delete,
            bump,
            contains,
            ttl,
            live,
            extend_lease,
        ] = sources().map(|(_, text)| Script::new(&text));
        Self {
            delete_if_equal,
            write_guarded,
            add,
            touch,
            incr,
            delete,
            bump,
            contains,
            ttl,
            live,
            extend_lease,
        }
    }
}

/// Each script's name (its file's) and the text sent to Redis, in the
/// order of [`Scripts`]' fields.
pub(super) fn sources() -> [(&'static str, String); 11] {
    let write_guarded = include_str!("write_guarded.lua")
        .replace("WRITE_ID_FROM", &(codec::WRITE_ID_AT + 1).to_string())
        .replace("WRITE_ID_TO", &(codec::WRITE_ID_AT + 8).to_string());
    [
        (
            "delete_if_equal",
            include_str!("delete_if_equal.lua").to_owned(),
        ),
        ("write_guarded", with_prelude(&write_guarded)),
        ("add", with_prelude(include_str!("add.lua"))),
        ("touch", with_prelude(include_str!("touch.lua"))),
        ("incr", with_prelude(include_str!("incr.lua"))),
        ("delete", with_prelude(include_str!("delete.lua"))),
        ("bump", include_str!("bump.lua").to_owned()),
        ("contains", with_prelude(include_str!("contains.lua"))),
        ("ttl", with_prelude(include_str!("ttl.lua"))),
        ("live", with_prelude(include_str!("live.lua"))),
        ("extend_lease", include_str!("extend_lease.lua").to_owned()),
    ]
}

/// A script that sees tombstones as absent.
fn with_prelude(body: &str) -> String {
    let prelude = include_str!("prelude.lua")
        .replace("FORMAT", &codec::FORMAT_V1.to_string())
        .replace("TOMBSTONE", &codec::TOMBSTONE.to_string());
    format!("{prelude}\n{body}")
}

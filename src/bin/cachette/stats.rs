//! `cachette stats`: what fills Redis, by group, sampled with `SCAN` and
//! `MEMORY USAGE` on every master, as tables or one JSON document.

use std::collections::BTreeMap;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::redis_target::Target;

/// Keys per `SCAN` page and per pipeline of `MEMORY USAGE` / `PTTL`.
const PAGE: usize = 500;

/// The lifetime buckets, as upper bounds in ms, and their names.
const TTL_BUCKETS: [(i64, &str); 5] = [
    (60_000, "< 1 min"),
    (600_000, "< 10 min"),
    (3_600_000, "< 1 h"),
    (86_400_000, "< 1 day"),
    (i64::MAX, ">= 1 day"),
];

#[derive(Default)]
struct Group {
    keys: u64,
    bytes: u64,
}

/// What a scan found.
#[derive(Default)]
struct Found {
    groups: BTreeMap<String, Group>,
    largest: Vec<(u64, String)>,
    ttl: BTreeMap<&'static str, u64>,
    scanned: u64,
    bytes: u64,
}

/// The group of a stored key: entries by their key up to its last `:`
/// (the function of a derived key, the family of a template), cachette's
/// own keys by their kind (`#ns`, `#tag`, `#lock`, ...).
fn group_of<'a>(prefix: &str, key: &'a str) -> &'a str {
    let Some(rest) = key.get(prefix.len()..) else {
        return key;
    };
    if rest.starts_with('#') {
        return &key[..prefix.len() + rest.find(':').unwrap_or(rest.len())];
    }
    let entry = rest.strip_prefix(':').unwrap_or(rest);
    match entry.rfind(':') {
        Some(at) => &entry[..at],
        None => "(no group)",
    }
}

pub(crate) async fn run(
    target: &Target,
    prefix: &str,
    glob: &str,
    sample: usize,
    top: usize,
    as_json: bool,
) -> Result<(), String> {
    let masters = target.masters().await?;
    let pattern = if glob == "*" {
        format!("{prefix}[:#]*")
    } else {
        format!("{prefix}:{glob}")
    };
    let mut total = 0_u64;
    for master in &masters {
        let size: u64 = redis::cmd("DBSIZE")
            .query_async(&mut master.clone())
            .await
            .map_err(|e| e.to_string())?;
        total += size;
    }
    let limit = u64::try_from(sample).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(total.min(limit));
    bar.set_style(
        ProgressStyle::with_template("scanning {bar:40} {pos}/{len} keys")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut found = Found::default();
    'masters: for master in &masters {
        let mut conn = master.clone();
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let room = usize::try_from(limit.saturating_sub(found.scanned)).unwrap_or(usize::MAX);
            let keys = &keys[..keys.len().min(room)];
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("MEMORY")
                        .arg("USAGE")
                        .arg(key)
                        .cmd("PTTL")
                        .arg(key);
                }
                let replies: Vec<(Option<u64>, i64)> = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                for (key, (bytes, ttl)) in keys.iter().zip(replies) {
                    // A key gone between SCAN and MEMORY USAGE is skipped.
                    let (Some(bytes), false) = (bytes, ttl == -2) else {
                        continue;
                    };
                    found.add(prefix, key, bytes, ttl, top);
                }
                bar.set_position(found.scanned);
            }
            if found.scanned >= limit {
                break 'masters;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    bar.finish_and_clear();
    found.trim(top);
    if as_json {
        println!("{}", found.json(prefix, total));
    } else {
        found.print(prefix, total);
    }
    Ok(())
}

impl Found {
    fn add(&mut self, prefix: &str, key: &str, bytes: u64, ttl: i64, top: usize) {
        self.scanned += 1;
        self.bytes += bytes;
        let group = self
            .groups
            .entry(group_of(prefix, key).to_owned())
            .or_default();
        group.keys += 1;
        group.bytes += bytes;
        let bucket = if ttl < 0 {
            "no expiry"
        } else {
            TTL_BUCKETS
                .iter()
                .find(|(bound, _)| ttl < *bound)
                .map_or(">= 1 day", |(_, name)| name)
        };
        *self.ttl.entry(bucket).or_default() += 1;
        self.largest.push((bytes, key.to_owned()));
        if self.largest.len() > top * 4 + 16 {
            self.trim(top);
        }
    }

    fn trim(&mut self, top: usize) {
        self.largest.sort_unstable_by(|a, b| b.cmp(a));
        self.largest.truncate(top);
    }

    fn groups_by_bytes(&self) -> Vec<(&String, &Group)> {
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
        groups
    }

    fn json(&self, prefix: &str, total: u64) -> serde_json::Value {
        json!({
            "prefix": prefix,
            "keys_in_database": total,
            "scanned": self.scanned,
            "bytes": self.bytes,
            "groups": self.groups_by_bytes().iter().map(|(name, g)| json!({
                "group": name, "keys": g.keys, "bytes": g.bytes,
            })).collect::<Vec<_>>(),
            "largest": self.largest.iter().map(|(bytes, key)| json!({"key": key, "bytes": bytes})).collect::<Vec<_>>(),
            "ttl": self.ttl,
        })
    }

    fn print(&self, prefix: &str, total: u64) {
        println!(
            "{} keys under {prefix:?} scanned ({} in the database), {} bytes",
            self.scanned, total, self.bytes
        );
        println!();
        println!(
            "{:<48} {:>10} {:>14} {:>10}",
            "group", "keys", "bytes", "avg bytes"
        );
        for (name, group) in self.groups_by_bytes() {
            println!(
                "{:<48} {:>10} {:>14} {:>10}",
                name,
                group.keys,
                group.bytes,
                group.bytes / group.keys.max(1)
            );
        }
        println!();
        println!("{:<64} {:>14}", "largest keys", "bytes");
        for (bytes, key) in &self.largest {
            println!("{key:<64} {bytes:>14}");
        }
        println!();
        println!("{:<12} {:>10}", "lifetime left", "keys");
        for name in TTL_BUCKETS
            .iter()
            .map(|(_, name)| *name)
            .chain(["no expiry"])
        {
            println!(
                "{name:<12} {:>10}",
                self.ttl.get(name).copied().unwrap_or(0)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::group_of;

    #[test]
    fn keys_are_grouped_by_family_and_kind() {
        assert_eq!(group_of("shop", "shop:user:7"), "user");
        assert_eq!(group_of("shop", "shop:api:stats:42"), "api:stats");
        assert_eq!(group_of("shop", "shop:orders::list:ab12"), "orders::list");
        assert_eq!(group_of("shop", "shop:plain"), "(no group)");
        assert_eq!(group_of("shop", "shop#ns:product"), "shop#ns");
        assert_eq!(group_of("shop", "shop#tag:user:7"), "shop#tag");
    }
}

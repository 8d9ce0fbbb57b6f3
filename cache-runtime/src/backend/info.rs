//! Which server a Redis backend talks to, read from `INFO server` once when
//! the cache is built (`server/probe.rs`), for `Health::server` and for the local tier's refusal at build time.

use std::fmt;

/// The server behind a Redis cache, as it described itself in `INFO server`
/// when the cache was built (see [`Health::server`](crate::Health::server)).
///
/// `INFO server` answers on every Redis version and on the servers that
/// speak its protocol; the fields they add tell them apart (`valkey_version`,
/// `dragonfly_version`, `keydb_version`). A server that only claims a
/// `redis_version` without Redis's own fields is [`ServerKind::Other`].
///
/// ```no_run
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use cachette::{ServerKind, Version};
///
/// let cache = cachette::Cache::builder()
///     .redis_url("redis://127.0.0.1:6379/0")
///     .build()
///     .await?;
/// if let Some(server) = cache.health().server {
///     println!("{server}"); // "Redis 7.0.15"
///     if server.kind == ServerKind::Redis && server.version < Version::new(6, 0, 0) {
///         println!("no RESP3: a local tier cannot be used here");
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Which server it is.
    pub kind: ServerKind,
    /// Its own version (for [`ServerKind::Other`], the `redis_version` it claims).
    pub version: Version,
    /// The Redis version it claims to be compatible with (`redis_version`),
    /// when it gives one.
    pub redis_version: Option<Version>,
}

/// The servers [`ServerInfo`] tells apart.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::ServerKind;
///
/// assert_eq!(ServerKind::Valkey.name(), "Valkey");
/// assert_eq!(ServerKind::Other.to_string(), "a Redis-compatible server");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    /// Redis itself.
    Redis,
    /// Valkey (`valkey_version`, or `server_name:valkey`).
    Valkey,
    /// Dragonfly (`dragonfly_version`).
    Dragonfly,
    /// `KeyDB` (`keydb_version`, or `server_name:keydb`).
    KeyDb,
    /// Another server that speaks Redis's protocol and claims a `redis_version`.
    Other,
}

/// A server's version: `major.minor.patch`, ordered as numbers.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::Version;
///
/// let version = Version::new(7, 0, 15);
/// assert!(version >= Version::new(6, 0, 0));
/// assert!(version < Version::new(7, 2, 0));
/// assert_eq!(version.to_string(), "7.0.15");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major version.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch level.
    pub patch: u32,
}

impl Version {
    /// The version `major.minor.patch`.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let v = cachette::Version::new(6, 2, 0);
    /// assert_eq!((v.major, v.minor, v.patch), (6, 2, 0));
    /// ```
    #[must_use]
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `7.0.15`, `df-v1.14.0` or `v8.0`: the numbers after any leading
    /// letters and dashes, missing parts 0; `None` without a major number.
    fn parse(text: &str) -> Option<Self> {
        let digits = text
            .trim()
            .trim_start_matches(|c: char| !c.is_ascii_digit());
        let mut parts = digits.split('.').map(|part| {
            let end = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            part[..end].parse::<u32>().ok()
        });
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl ServerKind {
    /// The server's name: `Redis`, `Valkey`, `Dragonfly`, `KeyDB`, or
    /// `a Redis-compatible server`.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// assert_eq!(cachette::ServerKind::KeyDb.name(), "KeyDB");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "Redis",
            Self::Valkey => "Valkey",
            Self::Dragonfly => "Dragonfly",
            Self::KeyDb => "KeyDB",
            Self::Other => "a Redis-compatible server",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ServerInfo {
    /// `Redis 7.0.15`, `Valkey 8.0.1`, `a Redis-compatible server (redis_version 7.2.0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ServerKind::Other => write!(f, "{} (redis_version {})", self.kind, self.version),
            kind => write!(f, "{kind} {}", self.version),
        }
    }
}

impl ServerInfo {
    /// What `INFO server` says: `None` when it names no version at all.
    pub(crate) fn parse(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim())
            })
        };
        let version = |name: &str| field(name).and_then(Version::parse);
        let redis_version = version("redis_version");
        let server_name = field("server_name").map(str::to_ascii_lowercase);
        let named = |name: &str| server_name.as_deref() == Some(name);
        let (kind, own) = if field("valkey_version").is_some() || named("valkey") {
            (ServerKind::Valkey, version("valkey_version"))
        } else if field("dragonfly_version").is_some() {
            (ServerKind::Dragonfly, version("dragonfly_version"))
        } else if field("keydb_version").is_some() || named("keydb") {
            (ServerKind::KeyDb, version("keydb_version"))
        } else if field("redis_build_id").is_some() || field("redis_mode").is_some() {
            (ServerKind::Redis, None)
        } else {
            (ServerKind::Other, None)
        };
        Some(Self {
            kind,
            version: own.or(redis_version)?,
            redis_version,
        })
    }

    /// Whether it speaks RESP3 (`HELLO 3`), which the local tier's tracking
    /// connection needs: Redis 6 and later, and every server that claims a
    /// `redis_version` of 6 or later. Unknown (`true`) when it claims none.
    pub(crate) fn speaks_resp3(&self) -> bool {
        let claimed = match self.kind {
            ServerKind::Redis => Some(self.version),
            _ => self.redis_version,
        };
        claimed.is_none_or(|v| v >= Version::new(6, 0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(fields: &[&str]) -> String {
        let mut text = "# Server\r\n".to_owned();
        for field in fields {
            text.push_str(field);
            text.push_str("\r\n");
        }
        text
    }

    #[test]
    fn redis_is_told_by_its_own_fields() {
        let parsed = ServerInfo::parse(&info(&[
            "redis_version:7.0.15",
            "redis_git_sha1:00000000",
            "redis_build_id:ae4d7c971a948f0",
            "redis_mode:standalone",
        ]))
        .unwrap();
        assert_eq!(parsed.kind, ServerKind::Redis);
        assert_eq!(parsed.version, Version::new(7, 0, 15));
        assert_eq!(parsed.redis_version, Some(Version::new(7, 0, 15)));
        assert_eq!(parsed.to_string(), "Redis 7.0.15");
        assert!(parsed.speaks_resp3());
    }

    #[test]
    fn forks_are_told_by_the_fields_they_add() {
        let valkey = ServerInfo::parse(&info(&[
            "redis_version:7.2.4",
            "server_name:valkey",
            "valkey_version:8.0.1",
            "redis_build_id:1",
        ]))
        .unwrap();
        assert_eq!(valkey.kind, ServerKind::Valkey);
        assert_eq!(valkey.version, Version::new(8, 0, 1));
        assert_eq!(valkey.redis_version, Some(Version::new(7, 2, 4)));
        assert_eq!(valkey.to_string(), "Valkey 8.0.1");

        let dragonfly = ServerInfo::parse(&info(&[
            "redis_version:7.4.0",
            "dragonfly_version:df-v1.14.0",
        ]))
        .unwrap();
        assert_eq!(dragonfly.kind, ServerKind::Dragonfly);
        assert_eq!(dragonfly.version, Version::new(1, 14, 0));

        let keydb =
            ServerInfo::parse(&info(&["redis_version:6.3.4", "server_name:KeyDB"])).unwrap();
        assert_eq!(keydb.kind, ServerKind::KeyDb);
        assert_eq!(keydb.version, Version::new(6, 3, 4));
    }

    #[test]
    fn an_unknown_server_is_known_by_the_redis_version_it_claims() {
        let other = ServerInfo::parse(&info(&["redis_version:6.2.0", "os:Linux"])).unwrap();
        assert_eq!(other.kind, ServerKind::Other);
        assert_eq!(other.version, Version::new(6, 2, 0));
        assert_eq!(
            other.to_string(),
            "a Redis-compatible server (redis_version 6.2.0)"
        );
        assert_eq!(ServerInfo::parse(&info(&["os:Linux"])), None);
        assert_eq!(ServerInfo::parse(""), None);
    }

    #[test]
    fn servers_before_redis_6_do_not_speak_resp3() {
        let old =
            ServerInfo::parse(&info(&["redis_version:5.0.14", "redis_mode:standalone"])).unwrap();
        assert!(!old.speaks_resp3());
        let fork =
            ServerInfo::parse(&info(&["redis_version:5.0.7", "keydb_version:6.0.0"])).unwrap();
        assert!(
            !fork.speaks_resp3(),
            "judged by the redis_version it claims"
        );
        let dragonfly = ServerInfo::parse(&info(&["dragonfly_version:v1.0"])).unwrap();
        assert!(
            dragonfly.speaks_resp3(),
            "unknown: left to the server's answer"
        );
    }

    #[test]
    fn versions_parse_leniently_and_order_as_numbers() {
        assert_eq!(Version::parse("7.0.15"), Some(Version::new(7, 0, 15)));
        assert_eq!(Version::parse("df-v1.14.0"), Some(Version::new(1, 14, 0)));
        assert_eq!(Version::parse("8.1"), Some(Version::new(8, 1, 0)));
        assert_eq!(
            Version::parse("255.255.255"),
            Some(Version::new(255, 255, 255))
        );
        assert_eq!(Version::parse("7.2.4-rc1"), Some(Version::new(7, 2, 4)));
        assert_eq!(Version::parse("unknown"), None);
        assert!(Version::new(10, 0, 0) > Version::new(9, 12, 3));
    }
}

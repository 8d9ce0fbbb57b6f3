//! Plain settings shared by the builder and the cache: timeouts, and the
//! options every computation starts from.

use std::time::Duration;

use crate::backend::Expiry;

/// How long a written entry lives.
///
/// Every method that writes takes `impl Into<Timeout>`, so a [`Duration`],
/// `None` (never expire) or [`Timeout::Default`] (the cache's default timeout,
/// 15 minutes unless configured) can be passed. A zero duration expires the
/// entry at once: the write removes it, as in Django. Any duration works:
/// one longer than 100 years never expires (as `None`).
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::Timeout;
/// use std::time::Duration;
///
/// assert_eq!(Timeout::from(Duration::from_secs(60)), Timeout::After(Duration::from_secs(60)));
/// assert_eq!(Timeout::from(None), Timeout::Never);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timeout {
    /// The cache's default timeout ([`CacheBuilder::default_timeout`](crate::CacheBuilder::default_timeout)).
    #[default]
    Default,
    /// Expire after this long.
    After(Duration),
    /// Never expire.
    Never,
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Self {
        Self::After(d)
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Self::Never, Self::After)
    }
}

/// Seconds or a `Duration`, as the options that take a length of time
/// accept them (`#[cached(timeout = ..)]` through `IntoTimeout`, `stale`,
/// `failover`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a duration",
    label = "expected seconds as an integer, or a `Duration`"
)]
pub trait Seconds {
    /// The duration this stands for; a negative number of seconds is zero.
    fn into_duration(self) -> Duration;
}

impl Seconds for Duration {
    fn into_duration(self) -> Duration {
        self
    }
}

/// Milliseconds or a `Duration`, as the computation's time limits take
/// them (`#[cached(soft_timeout = ..)]`, `hard_timeout`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a duration",
    label = "expected milliseconds as an integer, or a `Duration`"
)]
pub trait Millis {
    /// The duration this stands for; a negative number of milliseconds is zero.
    fn into_duration(self) -> Duration;
}

impl Millis for Duration {
    fn into_duration(self) -> Duration {
        self
    }
}

macro_rules! seconds {
    ($($t:ty),*) => {$(
        impl Seconds for $t {
            fn into_duration(self) -> Duration {
                Duration::from_secs(u64::try_from(self).unwrap_or(0))
            }
        }
    )*};
}
seconds!(u64, u32, i64, i32, usize);

macro_rules! millis {
    ($($t:ty),*) => {$(
        impl Millis for $t {
            fn into_duration(self) -> Duration {
                Duration::from_millis(u64::try_from(self).unwrap_or(0))
            }
        }
    )*};
}
millis!(u64, u32, i64, i32, usize);

impl Timeout {
    /// Whether this is a zero duration: nothing to keep.
    pub(crate) fn is_zero(self) -> bool {
        self == Self::After(Duration::ZERO)
    }

    pub(crate) fn resolve(self, default: Option<Duration>) -> Expiry {
        match self {
            Self::Default => Self::from(default).resolve(None),
            Self::After(d) => Expiry::after(d),
            Self::Never => Expiry::Never,
        }
    }
}

/// The default timeout of entries: 15 minutes, Django's usual `CACHE_TTL`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long values stay usable past their timeout, and how expiries spread.
/// Those left `None` come from the cache's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// Stale-while-revalidate: served this long past the timeout while one caller refreshes.
    pub(crate) stale: Option<Duration>,
    /// Failover: kept this long past the timeout, served when a refresh fails.
    pub(crate) failover: Option<Duration>,
    /// Early refresh (`XFetch`) with this beta.
    pub(crate) early: Option<f64>,
    /// Each timeout shortened by a random part up to this fraction.
    pub(crate) jitter: Option<f64>,
    /// With a stale or failover value at hand, how long a caller waits for
    /// its refresh (which finishes in the background) before taking it.
    pub(crate) soft_timeout: Option<Duration>,
    /// How long a computation may run before it is abandoned with an error.
    pub(crate) hard_timeout: Option<Duration>,
}

impl Policy {
    /// This policy, with what it leaves open taken from `defaults`.
    pub(crate) fn or(self, defaults: Policy) -> Policy {
        Policy {
            stale: self.stale.or(defaults.stale),
            failover: self.failover.or(defaults.failover),
            early: self.early.or(defaults.early),
            jitter: self.jitter.or(defaults.jitter),
            soft_timeout: self.soft_timeout.or(defaults.soft_timeout),
            hard_timeout: self.hard_timeout.or(defaults.hard_timeout),
        }
    }
}

/// What a cache does besides storing: built by [`CacheBuilder`](crate::CacheBuilder),
/// read by every operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) fail_open: bool,
    /// How long an invalidated key keeps its tombstone.
    pub(crate) tombstone_ttl: Duration,
    /// The lease every computation takes unless it says otherwise.
    pub(crate) lease: Option<Duration>,
    /// The freshness settings every computation uses unless it says otherwise.
    pub(crate) policy: Policy,
    /// One computation per key in this process.
    pub(crate) single_flight: bool,
    /// Spans carry keys as stored, rather than their digests.
    pub(crate) trace_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            default_timeout: Some(DEFAULT_TIMEOUT),
            fail_open: true,
            tombstone_ttl: Duration::from_secs(600),
            lease: None,
            policy: Policy::default(),
            single_flight: true,
            trace_keys: false,
        }
    }
}

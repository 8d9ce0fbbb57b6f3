//! Namespaces and tags: version counters that invalidate many entries at once.
//!
//! Each namespace and each tag has a version key, `{prefix}#ns:{name}` or
//! `{prefix}#tag:{name}`. An entry written in a scope is stamped with the
//! versions its computation started under; a read fetches the entry and the
//! current versions together (one `MGET`) and treats any difference as a
//! miss. Bumping a version is one atomic command, whatever the number of
//! entries; a stale entry is overwritten in place by its next computation.

use std::borrow::Cow;

use crate::Error;
use crate::key::{Internal, KeySpace};

/// The most namespaces and tags one entry can carry.
pub const MAX_SCOPE: usize = 255;

/// The namespace and tags of an entry.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::Scope;
///
/// let scope = Scope::new().namespace("product").tag("user:42").tag("orders");
/// assert_eq!(scope.tags().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    namespace: Option<Cow<'static, str>>,
    tags: Vec<Cow<'static, str>>,
}

impl Scope {
    /// No namespace, no tags.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the entry in `namespace`: [`Cache::invalidate_namespace`](crate::Cache::invalidate_namespace)
    /// drops it with every other entry of that namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<Cow<'static, str>>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Tags the entry: [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
    /// drops every entry carrying the tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(Cow::Owned(tag.into()));
        self
    }

    /// The tags, in the order given.
    #[must_use]
    pub fn tags(&self) -> &[Cow<'static, str>] {
        &self.tags
    }

    pub(crate) fn from_parts(
        namespace: Option<&'static str>,
        tags: Vec<Cow<'static, str>>,
    ) -> Self {
        Self {
            namespace: namespace.map(Cow::Borrowed),
            tags,
        }
    }

    /// The version keys to read beside the entry: the namespace's, then each
    /// tag's (an entry is stamped with their versions, in this order).
    #[inline]
    pub(crate) fn version_keys(&self, keys: &KeySpace) -> Result<Vec<String>, Error> {
        if self.namespace.is_none() && self.tags.is_empty() {
            // Most entries have no scope: nothing to build on their hit path.
            return Ok(Vec::new());
        }
        self.build_version_keys(keys)
    }

    fn build_version_keys(&self, keys: &KeySpace) -> Result<Vec<String>, Error> {
        let count = usize::from(self.namespace.is_some()) + self.tags.len();
        if count > MAX_SCOPE {
            return Err(Error::Config {
                reason: format!(
                    "an entry carries at most {MAX_SCOPE} namespaces and tags, not {count}"
                ),
                source: None,
            });
        }
        let mut out = Vec::with_capacity(count);
        if let Some(ns) = &self.namespace {
            out.push(keys.internal(Internal::Namespace, ns));
        }
        out.extend(
            self.tags
                .iter()
                .map(|tag| keys.internal(Internal::Tag, tag)),
        );
        Ok(out)
    }
}

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

    #[inline]
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
    pub(crate) fn version_keys(&self, keys: &KeySpace) -> Result<VersionKeys, Error> {
        if self.namespace.is_none() && self.tags.is_empty() {
            // Most entries have no scope: nothing to build on their hit path.
            return Ok(VersionKeys::default());
        }
        self.build_version_keys(keys)
    }

    fn build_version_keys(&self, keys: &KeySpace) -> Result<VersionKeys, Error> {
        let count = usize::from(self.namespace.is_some()) + self.tags.len();
        if count > MAX_SCOPE {
            return Err(Error::Config {
                reason: format!(
                    "an entry carries at most {MAX_SCOPE} namespaces and tags, not {count}"
                ),
                source: None,
            });
        }
        let names = self.namespace.iter().map(|ns| (Internal::Namespace, ns));
        let names = names.chain(self.tags.iter().map(|tag| (Internal::Tag, tag)));
        let room = names
            .clone()
            .map(|(kind, name)| keys.internal_len(kind, name))
            .sum();
        let mut out = Writing::with_capacity(room);
        for (kind, name) in names {
            keys.write_internal(&mut out.text, kind, name);
            out.end_key();
        }
        Ok(out.done())
    }
}

/// The version keys of a scope, in order (the namespace's, then each
/// tag's), written one after another in one buffer: a tagged hit builds
/// them with one allocation, not one per key. Small (32 bytes): it is
/// carried through every read.
#[derive(Debug, Clone, Default)]
pub(crate) struct VersionKeys {
    text: Box<str>,
    /// Where each of the first keys ends in `text` (0: no key), while they
    /// fit; the rest in `more`.
    few: [u16; 4],
    #[allow(clippy::box_collection)] // 8 bytes where a `Vec` takes 24
    more: Option<Box<Vec<u32>>>,
}

/// [`VersionKeys`] being written.
struct Writing {
    text: String,
    few: [u16; 4],
    #[allow(clippy::box_collection)] // as in `VersionKeys`
    more: Option<Box<Vec<u32>>>,
}

impl Writing {
    fn with_capacity(room: usize) -> Self {
        Self {
            text: String::with_capacity(room),
            few: [0; 4],
            more: None,
        }
    }

    /// Ends the key written last.
    fn end_key(&mut self) {
        let len = self.text.len();
        let free = self.few.iter().position(|&end| end == 0);
        let kept = match (free, u16::try_from(len)) {
            (Some(at), Ok(end)) if self.more.is_none() && end > 0 => {
                self.few[at] = end;
                true
            }
            _ => false,
        };
        if !kept {
            // Under MAX_SCOPE keys of bounded length: the text stays far below 4 GiB.
            let end = u32::try_from(len).unwrap_or(u32::MAX);
            self.more.get_or_insert_default().push(end);
        }
    }

    fn done(self) -> VersionKeys {
        VersionKeys {
            text: self.text.into_boxed_str(),
            few: self.few,
            more: self.more,
        }
    }
}

impl VersionKeys {
    /// No keys.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// `keys`, in order.
    pub(crate) fn from_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> Self {
        let mut out = Writing::with_capacity(0);
        for key in keys {
            out.text.push_str(key);
            out.end_key();
        }
        out.done()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.few[0] == 0 && self.more.is_none()
    }

    /// The keys, in order.
    #[inline]
    pub(crate) fn iter(&self) -> Keys<'_> {
        let more: &[u32] = self.more.as_deref().map_or(&[], Vec::as_slice);
        let few = self.few.iter().position(|&end| end == 0).unwrap_or(4);
        Keys {
            text: &self.text,
            few: self.few[..few].iter(),
            more: more.iter(),
            start: 0,
        }
    }
}

impl<'a> IntoIterator for &'a VersionKeys {
    type Item = &'a str;
    type IntoIter = Keys<'a>;

    #[inline]
    fn into_iter(self) -> Keys<'a> {
        self.iter()
    }
}

/// The keys of [`VersionKeys`], in order.
#[derive(Clone)]
pub(crate) struct Keys<'a> {
    text: &'a str,
    few: std::slice::Iter<'a, u16>,
    more: std::slice::Iter<'a, u32>,
    start: usize,
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let end = match self.few.next() {
            Some(&end) => usize::from(end),
            None => *self.more.next()? as usize,
        };
        let key = &self.text[self.start..end];
        self.start = end;
        Some(key)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.few.len() + self.more.len();
        (len, Some(len))
    }
}

impl ExactSizeIterator for Keys<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_are_the_internal_keys_in_order() {
        let keys = KeySpace::new("app", 250).unwrap();
        let mut scope = Scope::new().namespace("orders");
        let mut expected = vec![keys.internal(Internal::Namespace, "orders")];
        // Past four keys, the ends spill over; a tag may hold any text.
        for tag in ["user:42", "", "é#:x", "stats", "a", "b"] {
            scope = scope.tag(tag);
            expected.push(keys.internal(Internal::Tag, tag));
        }
        let built = scope.version_keys(&keys).unwrap();
        assert_eq!(built.iter().collect::<Vec<_>>(), expected);
        assert_eq!(built.iter().len(), 7);
        let again = VersionKeys::from_keys(expected.iter().map(String::as_str));
        assert_eq!(again.iter().collect::<Vec<_>>(), expected);
        // A key past 64 KiB of text: its end and every later one spill over.
        let long = "x".repeat(70_000);
        let keys = ["a", long.as_str(), "b", "c"];
        let spilled = VersionKeys::from_keys(keys);
        assert_eq!(spilled.iter().collect::<Vec<_>>(), keys);
        assert_eq!(spilled.iter().len(), 4);
    }

    #[test]
    fn an_unscoped_entry_has_no_version_keys() {
        let keys = KeySpace::new("app", 250).unwrap();
        let built = Scope::new().version_keys(&keys).unwrap();
        assert!(built.is_empty());
        assert_eq!(built.iter().next(), None);
        assert!(VersionKeys::none().is_empty());
    }

    #[test]
    fn too_many_tags_are_refused() {
        let keys = KeySpace::new("app", 250).unwrap();
        let scope = (0..=MAX_SCOPE).fold(Scope::new(), |scope, n| scope.tag(n.to_string()));
        let error = scope.version_keys(&keys).unwrap_err();
        assert!(error.to_string().contains("at most 255"), "{error}");
    }
}

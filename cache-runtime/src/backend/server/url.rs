//! Redis URLs: with their password hidden, and pointed at another node.

/// `url` pointing at `host:port` instead, its scheme, credentials, path
/// and query kept.
pub(crate) fn with_address(url: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let credentials = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    format!("{scheme}://{credentials}{host}:{port}{tail}")
}

/// The URL with its password, if any, replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn addresses_are_replaced_and_credentials_kept() {
        use super::with_address;
        assert_eq!(
            with_address("redis://:pw@10.0.0.1:7000", "127.0.0.1", 7001),
            "redis://:pw@127.0.0.1:7001"
        );
        assert_eq!(
            with_address("rediss://app:pw@h:1/2?x=1", "m", 9),
            "rediss://app:pw@m:9/2?x=1"
        );
        assert_eq!(with_address("redis://h:1", "m", 2), "redis://m:2");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/2"),
            "redis://127.0.0.1:6379/2"
        );
        assert_eq!(
            redact("redis://:secret@host:6379"),
            "redis://:***@host:6379"
        );
        assert_eq!(
            redact("rediss://app:p%40ss@host/1"),
            "rediss://app:***@host/1"
        );
        assert_eq!(redact("redis://app@host"), "redis://app@host");
    }
}

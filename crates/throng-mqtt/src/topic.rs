//! Topic filters (§4.7): levels split by `/`, `+` matches one level, `#` (last) the rest.

/// Whether `filter` matches `topic`. Topics starting with `$` match only filters that name
/// their first level (§4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            name => {
                if topic_levels.next() != Some(name) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn filters_match_as_the_specification_says() {
        assert!(matches("bench/#", "bench/1"));
        assert!(
            matches("bench/#", "bench"),
            "# also matches the parent level"
        );
        assert!(matches("bench/+", "bench/7"));
        assert!(!matches("bench/+", "bench/7/x"));
        assert!(matches("+/+", "a/b"));
        assert!(matches("#", "a/b/c"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }
}

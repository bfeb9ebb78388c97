//! Where a key is in the file, so that an error about its value can name the line.

use toml::de::{DeTable, DeValue};

/// One step of a path into the document: a table key or an array index.
#[derive(Clone, Debug)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path like `backends.app.servers[2].address`.
#[derive(Clone, Debug, Default)]
pub struct KeyPath(pub Vec<Step>);

impl KeyPath {
    pub fn key(&self, key: &str) -> KeyPath {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_string()));
        KeyPath(steps)
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        KeyPath(steps)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => write!(f, "{key}")?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line of the value at `path`, or of its nearest ancestor the file spells out.
pub fn line_of(text: &str, path: &KeyPath) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut offset = None;
    let mut table: Option<&DeTable> = Some(root.get_ref());
    let mut array: Option<&[toml::Spanned<DeValue>]> = None;
    for step in &path.0 {
        let value = match (step, table, array) {
            (Step::Key(key), Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                .map(|(_, v)| v),
            (Step::Index(i), _, Some(a)) => a.get(*i),
            _ => None,
        };
        let Some(value) = value else { break };
        offset = Some(value.span().start);
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a.as_ref()),
            _ => {}
        }
    }
    offset.map(|at| line_at(text, at))
}

/// The 1-based line of byte offset `at`.
pub fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_array_items() {
        let text = "[global]\nthreads = 2\n\n[backends.app]\nservers = [\n  { name = \"a\", address = \"x\" },\n  { name = \"b\", address = \"y\" },\n]\n";
        let path = KeyPath::default().key("global").key("threads");
        assert_eq!(line_of(text, &path), Some(2));
        let path = KeyPath::default()
            .key("backends")
            .key("app")
            .key("servers")
            .index(1)
            .key("address");
        assert_eq!(path.to_string(), "backends.app.servers[1].address");
        assert_eq!(line_of(text, &path), Some(7));
    }
}

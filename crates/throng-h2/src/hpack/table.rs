//! HPACK's tables (RFC 7541 §2.3): the static table of 61 fields, and a connection's dynamic
//! table, bounded by the size its decoder allows (each entry counts its name, value and 32).

use std::collections::VecDeque;

/// RFC 7541 Appendix A: index 1 is the first entry.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// An entry's size as §4.1 counts it.
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// The dynamic table: newest first. Entries are one allocation each, and an empty table holds
/// none (an idle connection whose client sent no indexed fields costs nothing here).
#[derive(Debug, Default)]
pub struct Dynamic {
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
}

#[derive(Debug)]
struct Entry {
    /// The name, then the value.
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Dynamic {
    pub fn new(max: usize) -> Dynamic {
        Dynamic {
            entries: VecDeque::new(),
            size: 0,
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new maximum (a dynamic table size update): entries evicted until they fit.
    pub fn resize(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
        if self.entries.is_empty() {
            // Give the ring back: a table emptied by an update holds nothing.
            self.entries = VecDeque::new();
        }
    }

    /// Adds a field at the front, evicting the oldest to make room; a field bigger than the
    /// whole table empties it and is not added (§4.4).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = entry_size(name, value);
        if size > self.max {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max - size);
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.entries.push_front(Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        });
        self.size += size;
    }

    /// The field at a dynamic index (0 is the newest).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let entry = self.entries.get(index)?;
        let (name, value) = entry.bytes.split_at_checked(entry.name_len)?;
        Some((name, value))
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let Some(oldest) = self.entries.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= oldest.bytes.len() + 32;
        }
    }
}

/// The field at an HPACK index: 1-61 static, then dynamic.
pub fn lookup(dynamic: &Dynamic, index: usize) -> Option<(&[u8], &[u8])> {
    match index {
        0 => None,
        1..=61 => STATIC.get(index - 1).copied(),
        _ => dynamic.get(index - 62),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_evicted_oldest_first_and_a_huge_one_empties_the_table() {
        let mut table = Dynamic::new(100);
        table.insert(b"a", b"1"); // 34
        table.insert(b"b", b"2"); // 34
        assert_eq!((table.len(), table.size()), (2, 68));
        table.insert(b"c", b"3"); // 102 > 100: "a" goes
        assert_eq!(table.get(0), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(table.get(1), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.get(2), None);
        assert_eq!(lookup(&table, 62), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(lookup(&table, 2), Some((&b":method"[..], &b"GET"[..])));
        assert_eq!(lookup(&table, 0), None);
        table.insert(&[b'x'; 80], b"");
        assert!(table.is_empty());
        assert_eq!(table.size(), 0);
        table.insert(b"a", b"1");
        table.resize(0);
        assert!(table.is_empty());
    }
}

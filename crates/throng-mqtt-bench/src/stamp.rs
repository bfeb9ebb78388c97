//! What a publisher writes at the head of each payload, for the subscriber to measure: a run
//! tag, the publisher's index, the message's sequence number among that publisher's, and the
//! intended and actual send times (Unix nanoseconds). The rest of the payload is padding.

pub const LEN: usize = 4 + 4 + 4 + 8 + 8 + 8;
const MAGIC: &[u8; 4] = b"THRM";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Tells this run's messages from others' on a shared broker.
    pub run: u32,
    pub publisher: u32,
    pub seq: u64,
    pub intended_unix_ns: u64,
    pub sent_unix_ns: u64,
}

impl Stamp {
    /// Writes the stamp and pads to `size` (at least the stamp's length).
    pub fn write(&self, out: &mut Vec<u8>, size: usize) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.run.to_be_bytes());
        out.extend_from_slice(&self.publisher.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.intended_unix_ns.to_be_bytes());
        out.extend_from_slice(&self.sent_unix_ns.to_be_bytes());
        out.resize(start + size.max(LEN), b'.');
    }

    /// The stamp at the head of `payload`, if it has one.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let (magic, rest) = payload.split_first_chunk::<4>()?;
        if magic != MAGIC {
            return None;
        }
        let (run, rest) = rest.split_first_chunk::<4>()?;
        let (publisher, rest) = rest.split_first_chunk::<4>()?;
        let (seq, rest) = rest.split_first_chunk::<8>()?;
        let (intended, rest) = rest.split_first_chunk::<8>()?;
        let (sent, _) = rest.split_first_chunk::<8>()?;
        Some(Stamp {
            run: u32::from_be_bytes(*run),
            publisher: u32::from_be_bytes(*publisher),
            seq: u64::from_be_bytes(*seq),
            intended_unix_ns: u64::from_be_bytes(*intended),
            sent_unix_ns: u64::from_be_bytes(*sent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_round_trips_and_pads() {
        let stamp = Stamp {
            run: 7,
            publisher: 3,
            seq: 99,
            intended_unix_ns: 1,
            sent_unix_ns: 2,
        };
        let mut out = Vec::new();
        stamp.write(&mut out, 100);
        assert_eq!(out.len(), 100);
        assert_eq!(Stamp::read(&out), Some(stamp));
        assert_eq!(Stamp::read(b"hello"), None);
        let mut short = Vec::new();
        stamp.write(&mut short, 1);
        assert_eq!(short.len(), LEN, "never shorter than the stamp");
    }
}

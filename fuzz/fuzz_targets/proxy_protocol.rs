//! A PROXY protocol header as `accept_proxy` reads it from a peek of the connection's first
//! bytes: a whole header's length never passes what was seen, and parsing a longer peek of the
//! same bytes gives the same answer; whatever parses as a header (or its start) is also what
//! a connection from a sender `accept_proxy` does not name is refused for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_proxy::proxy_protocol::{could_be_header, parse};

fuzz_target!(|data: &[u8]| {
    if matches!(parse(data), Ok(_)) {
        assert!(could_be_header(data));
    }
    if let Ok(Some(header)) = parse(data) {
        assert!(header.len <= data.len());
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"after");
        assert_eq!(parse(&longer), Ok(Some(header)));
    }
});

//! HPACK decoding of any block, twice on one decoder (the table carries over): no panic,
//! within the limits, and every field it hands over encodes and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_h2::hpack::decoder::ListLimits;
use throng_h2::hpack::{encode_field, Decoder};

fuzz_target!(|data: &[u8]| {
    let limits = ListLimits {
        max_list_size: 16 * 1024,
        max_fields: 100,
    };
    let mut decoder = Decoder::new(4096);
    let half = data.len() / 2;
    for block in [&data[..half], &data[half..]] {
        let mut fields = Vec::new();
        if decoder
            .decode(block, limits, |n, v| fields.push((n.to_vec(), v.to_vec())))
            .is_err()
        {
            return;
        }
        assert!(fields.len() <= 100);
        assert!(decoder.table().size() <= 4096);
        let mut again = Vec::new();
        for (n, v) in &fields {
            encode_field(n, v, &mut again);
        }
        let mut back = Vec::new();
        Decoder::new(4096)
            .decode(&again, ListLimits { max_list_size: usize::MAX, max_fields: usize::MAX }, |n, v| {
                back.push((n.to_vec(), v.to_vec()))
            })
            .expect("what the encoder wrote decodes");
        assert_eq!(back, fields);
    }
});

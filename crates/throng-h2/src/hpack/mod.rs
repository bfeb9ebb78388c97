//! HPACK (RFC 7541): header blocks decoded with the limits a server sets, and encoded without
//! a dynamic table (so a connection's encoder holds nothing).

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod integer;
pub mod table;

pub use decoder::{Decoded, Decoder, DecoderError};
pub use encoder::encode_field;

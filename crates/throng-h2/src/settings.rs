//! SETTINGS parameters (RFC 9113 §6.5.2) and what each value may be.

use crate::error::{ErrorCode, H2Error};
use crate::frame::{DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW};

pub const HEADER_TABLE_SIZE: u16 = 0x1;
pub const ENABLE_PUSH: u16 = 0x2;
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const MAX_FRAME_SIZE: u16 = 0x5;
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// RFC 8441's extended CONNECT.
pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The window every stream and the connection start with (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The settings of one side, as that side sent them (or their defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: u32,
    pub enable_push: bool,
    /// `None`: unlimited, the default.
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// `None`: unlimited, the default.
    pub max_header_list_size: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}

impl Settings {
    /// Applies a SETTINGS frame's parameters in order, as §6.5.3 says: unknown ones ignored,
    /// values out of range a connection error.
    pub fn apply(&mut self, params: &[u8]) -> Result<(), H2Error> {
        for param in params.chunks_exact(6) {
            let [a, b, c, d, e, f] = <[u8; 6]>::try_from(param).unwrap_or_default();
            let id = u16::from_be_bytes([a, b]);
            let value = u32::from_be_bytes([c, d, e, f]);
            match id {
                HEADER_TABLE_SIZE => self.header_table_size = value,
                ENABLE_PUSH => {
                    self.enable_push = match value {
                        0 => false,
                        1 => true,
                        _ => {
                            return Err(H2Error::connection(
                                ErrorCode::PROTOCOL_ERROR,
                                "SETTINGS_ENABLE_PUSH not 0 or 1",
                            ))
                        }
                    }
                }
                MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
                INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW {
                        return Err(H2Error::connection(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
                        ));
                    }
                    self.initial_window_size = value;
                }
                MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                        return Err(H2Error::connection(
                            ErrorCode::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.max_frame_size = value;
                }
                MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
                ENABLE_CONNECT_PROTOCOL if value > 1 => {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(id: u16, value: u32) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&value.to_be_bytes());
        p
    }

    #[test]
    fn values_out_of_range_are_connection_errors() {
        let mut s = Settings::default();
        assert_eq!(
            s.apply(&param(ENABLE_PUSH, 2)).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        assert_eq!(
            s.apply(&param(INITIAL_WINDOW_SIZE, 1 << 31))
                .unwrap_err()
                .code,
            ErrorCode::FLOW_CONTROL_ERROR
        );
        assert_eq!(
            s.apply(&param(MAX_FRAME_SIZE, 16_383)).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        assert_eq!(
            s.apply(&param(MAX_FRAME_SIZE, 1 << 24)).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        let mut ok = param(MAX_CONCURRENT_STREAMS, 7);
        ok.extend(param(0xabcd, 99)); // unknown: ignored
        ok.extend(param(MAX_FRAME_SIZE, 1 << 20));
        s.apply(&ok).unwrap();
        assert_eq!(s.max_concurrent_streams, Some(7));
        assert_eq!(s.max_frame_size, 1 << 20);
    }
}

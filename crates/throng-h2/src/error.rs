//! HTTP/2's error codes (RFC 9113 §7) and the two scopes an error has (§5.4).

/// An error code as RST_STREAM and GOAWAY carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The name RFC 9113 gives it, or "unknown" (a peer may send codes we do not know).
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error found in what the peer sent: the whole connection ends with a GOAWAY, or one
/// stream ends with a RST_STREAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2Error {
    pub code: ErrorCode,
    /// 0 for a connection error; the stream's id for a stream error.
    pub stream: u32,
    /// What was wrong, for the log line.
    pub reason: &'static str,
    /// The limit it went past, when it is a flood (then the code is ENHANCE_YOUR_CALM).
    pub flood: Option<Flood>,
}

impl H2Error {
    pub fn connection(code: ErrorCode, reason: &'static str) -> H2Error {
        H2Error {
            code,
            stream: 0,
            reason,
            flood: None,
        }
    }

    pub fn stream(stream: u32, code: ErrorCode, reason: &'static str) -> H2Error {
        H2Error {
            code,
            stream,
            reason,
            flood: None,
        }
    }

    /// A flood: the connection ends with ENHANCE_YOUR_CALM.
    pub fn flood(flood: Flood) -> H2Error {
        H2Error {
            code: ErrorCode::ENHANCE_YOUR_CALM,
            stream: 0,
            reason: flood.describe(),
            flood: Some(flood),
        }
    }

    pub fn is_connection_error(&self) -> bool {
        self.stream == 0
    }
}

impl std::fmt::Display for H2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stream == 0 {
            write!(f, "{} ({})", self.code, self.reason)
        } else {
            write!(
                f,
                "{} on stream {} ({})",
                self.code, self.stream, self.reason
            )
        }
    }
}

/// Which limit a connection hit: its name is the log's and the counter's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flood {
    Resets,
    Settings,
    Pings,
    Ignored,
    WindowUpdates,
    EmptyData,
    Continuations,
    HeaderBlock,
}

impl Flood {
    pub const ALL: [Flood; 8] = [
        Flood::Resets,
        Flood::Settings,
        Flood::Pings,
        Flood::Ignored,
        Flood::WindowUpdates,
        Flood::EmptyData,
        Flood::Continuations,
        Flood::HeaderBlock,
    ];

    fn describe(self) -> &'static str {
        match self {
            Flood::Resets => "too many streams reset per second",
            Flood::Settings => "too many SETTINGS per second",
            Flood::Pings => "too many PINGs per second",
            Flood::Ignored => "too many PRIORITY or unknown frames per second",
            Flood::WindowUpdates => "too many WINDOW_UPDATEs per second",
            Flood::EmptyData => "too many empty DATA frames per second",
            Flood::Continuations => "too many CONTINUATION frames in one header block",
            Flood::HeaderBlock => "header block larger than the limit",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flood::Resets => "resets",
            Flood::Settings => "settings",
            Flood::Pings => "pings",
            Flood::Ignored => "ignored_frames",
            Flood::WindowUpdates => "window_updates",
            Flood::EmptyData => "empty_data",
            Flood::Continuations => "continuations",
            Flood::HeaderBlock => "header_block",
        }
    }
}

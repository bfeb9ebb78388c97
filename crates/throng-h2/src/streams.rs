//! The streams a connection has open, and the few it closed last.
//!
//! A stream here is open or half-closed (RFC 9113 §5.1); idle streams are the ids past the
//! highest one opened, and closed streams are dropped. The ids of the last few closed are kept
//! so that a frame on one of them gets STREAM_CLOSED, while one on an id never opened gets
//! PROTOCOL_ERROR, as the RFC tells the two apart. Both sides of a connection keep them so:
//! the server for its clients' requests, the client for its own.

/// One open stream's state.
#[derive(Debug)]
pub(crate) struct Stream {
    pub id: u32,
    /// END_STREAM came from the peer (half-closed remote).
    pub recv_closed: bool,
    /// END_STREAM went to the peer (half-closed local).
    pub send_closed: bool,
    /// What the peer may still send before we open the window again.
    pub recv_window: i64,
    /// Bytes the caller passed on but whose window is not given back yet.
    pub unreleased: u32,
    /// What we may still send.
    pub send_window: i64,
    /// The content-length of the message being received, and the DATA bytes received so far.
    pub content_length: Option<u64>,
    pub received: u64,
    /// The server's response head went out, or the client's came in (what follows is DATA or
    /// trailers).
    pub head_sent: bool,
    /// The client asked for a response with no body (HEAD): its content-length describes what
    /// a GET would have had, and no DATA may come.
    pub no_body: bool,
}

impl Stream {
    pub fn new(id: u32, recv_window: u32, send_window: u32) -> Stream {
        Stream {
            id,
            recv_closed: false,
            send_closed: false,
            recv_window: i64::from(recv_window),
            unreleased: 0,
            send_window: i64::from(send_window),
            content_length: None,
            received: 0,
            head_sent: false,
            no_body: false,
        }
    }
}

const RECENT: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// Open streams, few (at most SETTINGS_MAX_CONCURRENT_STREAMS): a vector searched by id
    /// is smaller and as fast as a map. Empty, it holds no allocation.
    open: Vec<Stream>,
    recent: [u32; RECENT],
    next_recent: usize,
}

impl Streams {
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn get(&mut self, id: u32) -> Option<&mut Stream> {
        self.open.iter_mut().find(|s| s.id == id)
    }

    pub fn contains(&self, id: u32) -> bool {
        self.open.iter().any(|s| s.id == id)
    }

    pub fn insert(&mut self, stream: Stream) {
        self.open.push(stream);
    }

    /// Closes a stream: it is dropped and its id remembered among the recently closed.
    pub fn close(&mut self, id: u32) {
        if let Some(at) = self.open.iter().position(|s| s.id == id) {
            self.open.swap_remove(at);
            if self.open.is_empty() {
                self.open = Vec::new();
            }
        }
        self.remember(id);
    }

    /// Remembers an id as closed though it never was open here (a refused stream).
    pub fn remember(&mut self, id: u32) {
        if let Some(slot) = self.recent.get_mut(self.next_recent % RECENT) {
            *slot = id;
        }
        self.next_recent = self.next_recent.wrapping_add(1);
    }

    pub fn recently_closed(&self, id: u32) -> bool {
        id != 0 && self.recent.contains(&id)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.open.iter_mut()
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.open.iter().map(|s| s.id)
    }
}

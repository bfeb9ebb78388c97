//! Both directions of a tunnel (TCP mode, upgraded HTTP) at once, with buffers taken only while
//! bytes are in flight, half-closes passed on, and one inactivity timeout for both sides.

use throng_net::buffers::Buffer;

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Which side a tunnel ended by, in HAProxy's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Both sides closed their halves.
    Closed,
    /// The client failed (reset, TLS error, write refused).
    ClientError,
    /// The server failed.
    ServerError,
    /// Nothing moved for the inactivity timeout.
    Timeout,
}

impl Ending {
    /// The termination state HAProxy logs for a tunnel that ended so.
    pub fn termination(self) -> [u8; 2] {
        match self {
            Ending::Closed => *b"--",
            Ending::ClientError => *b"CD",
            Ending::ServerError => *b"SD",
            Ending::Timeout => *b"cD",
        }
    }
}

/// What a tunnel carried and how it ended.
#[derive(Debug)]
pub struct Tunnel {
    pub to_server: u64,
    pub to_client: u64,
    pub ending: Ending,
}

#[derive(Default)]
struct Direction {
    pending: Option<Buffer>,
    read_done: bool,
    shut_down: bool,
    bytes: u64,
}

/// Moves bytes in one direction until it would wait; `Ready(Ok)` once the reader ended and the
/// end was passed on. Errors say which side: `Err((true, e))` is the reader's.
fn poll_direction<R, W>(
    cx: &mut Context<'_>,
    from: &mut R,
    to: &mut W,
    d: &mut Direction,
    moved: &mut bool,
) -> Poll<Result<(), bool>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if let Some(buffer) = d.pending.as_mut() {
            while !buffer.is_empty() {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, buffer.filled()))
                    .map_err(|_| false)?;
                if n == 0 {
                    return Poll::Ready(Err(false));
                }
                buffer.consume(n);
                *moved = true;
            }
            d.pending = None;
            ready!(Pin::new(&mut *to).poll_flush(cx)).map_err(|_| false)?;
        }
        if d.read_done {
            if !d.shut_down {
                // The peer may already be gone; its half-close is what we pass on, not a failure.
                let _ = ready!(Pin::new(&mut *to).poll_shutdown(cx));
                d.shut_down = true;
            }
            return Poll::Ready(Ok(()));
        }
        let mut buffer = Buffer::take();
        let mut read = ReadBuf::new(buffer.spare());
        ready!(Pin::new(&mut *from).poll_read(cx, &mut read)).map_err(|_| true)?;
        let n = read.filled().len();
        if n == 0 {
            d.read_done = true;
        } else {
            buffer.end = n;
            d.bytes += n as u64;
            d.pending = Some(buffer);
            *moved = true;
        }
    }
}

/// Relays between `client` and `server` until both directions end, either fails, or nothing
/// moves for `idle`.
pub async fn run<C, S>(client: &mut C, server: &mut S, idle: Duration) -> Tunnel
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Direction::default();
    let mut down = Direction::default();
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    let ending = std::future::poll_fn(|cx| {
        let mut moved = false;
        let up_state = if up.shut_down && up.pending.is_none() {
            Poll::Ready(Ok(()))
        } else {
            poll_direction(cx, client, server, &mut up, &mut moved)
        };
        if let Poll::Ready(Err(reader_failed)) = up_state {
            return Poll::Ready(if reader_failed {
                Ending::ClientError
            } else {
                Ending::ServerError
            });
        }
        let down_state = if down.shut_down && down.pending.is_none() {
            Poll::Ready(Ok(()))
        } else {
            poll_direction(cx, server, client, &mut down, &mut moved)
        };
        if let Poll::Ready(Err(reader_failed)) = down_state {
            return Poll::Ready(if reader_failed {
                Ending::ServerError
            } else {
                Ending::ClientError
            });
        }
        if up_state.is_ready() && down_state.is_ready() {
            return Poll::Ready(Ending::Closed);
        }
        if moved {
            sleep.as_mut().reset(Instant::now() + idle);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ending::Timeout);
        }
        Poll::Pending
    })
    .await;
    Tunnel {
        to_server: up.bytes,
        to_client: down.bytes,
        ending,
    }
}

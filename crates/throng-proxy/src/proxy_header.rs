//! `accept_proxy`: a new connection's PROXY protocol header, taken off the socket before
//! anything else reads it (TLS, HTTP and MQTT then start right after it).
//!
//! - From a sender `accept_proxy` names (or anyone, with `true`): the header must come whole
//!   within `timeout.handshake`; its address is the connection's from then on.
//! - From anyone else: the connection is its client's own; if it starts with a header anyway,
//!   it is refused (a client forging its address).
//!
//! Bytes are peeked, never read, until the whole header is there, and the wait for more is the
//! kernel's: `SO_RCVLOWAT` is set to one byte more than what came, so the socket is readable
//! again only when more has arrived (or at its end), not at once for the same bytes.

use crate::proxy_protocol::{self, Senders};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

/// The longest header: a v2 header with its largest body (a v1 line is shorter).
const LONGEST: usize = 16 + 512;

/// How long a connection from a sender `accept_proxy` does not name is watched for a header
/// before it is served as it is.
const UNLISTED_WAIT: Duration = Duration::from_millis(250);

/// The header's client address, if it gave one (`None` too for a connection that is its own
/// client's); an error says why the connection is refused.
pub(crate) async fn take(
    stream: &mut TcpStream,
    peer: SocketAddr,
    senders: &Senders,
    timeout: Duration,
) -> Result<Option<SocketAddr>, String> {
    if *senders == Senders::Nobody {
        return Ok(None);
    }
    let expected = senders.expects(peer.ip());
    // A client of its own is looked at only briefly: one whose protocol has the server speak
    // first sends nothing, and must not wait the whole handshake timeout for its backend.
    let wait = match expected {
        true => timeout,
        false => timeout.min(UNLISTED_WAIT),
    };
    let outcome = tokio::time::timeout(wait, look(stream, peer, expected)).await;
    // Back to the kernel's default: every later read wants any byte.
    let _ = low_water(stream, 1);
    match outcome {
        Ok(outcome) => outcome,
        // A client of its own that has sent nothing yet (a protocol whose server speaks
        // first, or a slow client): it is served as it is.
        Err(_) if !expected => Ok(None),
        Err(_) => Err(format!("no whole PROXY protocol header within {timeout:?}")),
    }
}

async fn look(
    stream: &mut TcpStream,
    peer: SocketAddr,
    expected: bool,
) -> Result<Option<SocketAddr>, String> {
    let mut peeked = [0u8; LONGEST];
    let mut seen = 0;
    loop {
        seen = peek_more(stream, &mut peeked, seen)
            .await
            .map_err(|e| e.to_string())?;
        let bytes = peeked.get(..seen).unwrap_or_default();
        if seen == 0 {
            return match expected {
                true => Err("closed before a PROXY protocol header".into()),
                false => Ok(None),
            };
        }
        if !expected {
            if !proxy_protocol::could_be_header(bytes) {
                return Ok(None);
            }
            // "PROXY " or v2's whole 12-byte signature says it; less may be something else.
            if !bytes.starts_with(b"PROXY ") && seen < 12 {
                continue;
            }
            return Err(format!(
                "a PROXY protocol header from {}, which accept_proxy does not name",
                peer.ip()
            ));
        }
        match proxy_protocol::parse(bytes) {
            Ok(Some(header)) => {
                let mut taken = vec![0u8; header.len];
                stream
                    .read_exact(&mut taken)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(header.source);
            }
            Ok(None) if seen < LONGEST => {}
            Ok(None) => return Err("a PROXY protocol header longer than any valid one".into()),
            Err(why) => return Err(why.to_string()),
        }
    }
}

/// Waits until more than `seen` bytes are waiting on the socket (or its end), and peeks them
/// all into `buf`: how many there are (0 at the end).
async fn peek_more(stream: &TcpStream, buf: &mut [u8], seen: usize) -> io::Result<usize> {
    low_water(stream, seen + 1)?;
    loop {
        stream.readable().await?;
        let peeked = stream.try_io(Interest::READABLE, || {
            // SAFETY: recv(2) writes at most buf.len() bytes into buf, which lives throughout.
            let n = unsafe {
                libc::recv(
                    stream.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            match n {
                n if n < 0 => Err(io::Error::last_os_error()),
                0 => Ok(0),
                // Only what came before: the readiness is cleared, and the kernel wakes the
                // socket again at the low-water mark.
                n if (n as usize) <= seen => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n as usize),
            }
        });
        match peeked {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// `SO_RCVLOWAT`: the socket is readable once this many bytes wait.
fn low_water(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt(2) reads one c_int from a live local.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

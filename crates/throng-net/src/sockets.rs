//! Socket set-up with socket2: listeners that several threads (or processes) share through
//! `SO_REUSEPORT`, and outgoing sockets bound to a chosen source address.

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

/// How a listening socket is set up.
#[derive(Clone, Copy, Debug)]
pub struct ListenOptions {
    /// The accept queue's length (the kernel caps it at `net.core.somaxconn`).
    pub backlog: i32,
    /// `TCP_NODELAY` on the listener, which Linux copies to every accepted socket.
    pub nodelay: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 4096,
            nodelay: true,
        }
    }
}

/// Binds one non-blocking listener with `SO_REUSEADDR` and `SO_REUSEPORT`, so that other sockets
/// (one per worker thread or process) can bind the same address and the kernel spreads
/// connections between them.
pub fn bind_listener(addr: SocketAddr, options: ListenOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_tcp_nodelay(options.nodelay)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| with_context(e, format!("cannot listen on {addr}")))?;
    socket.listen(options.backlog)?;
    Ok(socket.into())
}

/// Binds `count` listeners on one address, one per worker. Port 0 means "any free port": the
/// first listener picks it and the others join that same port.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
    options: ListenOptions,
) -> io::Result<Vec<TcpListener>> {
    let first = bind_listener(addr, options)?;
    let bound = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind_listener(bound, options)?);
    }
    Ok(group)
}

/// A socket for an outgoing connection, bound to `source` when one is given.
///
/// With a source address the socket gets `IP_BIND_ADDRESS_NO_PORT`: the kernel then picks the
/// source port at `connect()` time, per destination, instead of at `bind()` time for all
/// destinations; without it one source address runs out of ports at ~28k-64k connections in all.
pub fn outgoing_socket(
    dest: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<tokio::net::TcpSocket> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    if let Some(source) = source {
        set_bind_address_no_port(&socket)?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| {
                with_context(
                    e,
                    format!("cannot bind source address {source}: is it on this host?"),
                )
            })?;
    }
    Ok(tokio::net::TcpSocket::from_std_stream(socket.into()))
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2+), which socket2 does not expose.
pub fn set_bind_address_no_port<'s>(socket: impl Into<SockRef<'s>>) -> io::Result<()> {
    set_int_option(
        socket.into(),
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        1,
    )
}

/// Reads `IP_BIND_ADDRESS_NO_PORT` back.
pub fn bind_address_no_port<'s>(socket: impl Into<SockRef<'s>>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let socket = socket.into();
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is a live socket borrowed for the call; value and len point to valid memory
    // of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value != 0)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int_option(
    socket: SockRef<'_>,
    level: i32,
    name: i32,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is a live socket borrowed for the call; the option value is a c_int whose
    // size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn with_context(error: io::Error, context: String) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

/// Reads what the socket has without waiting, like `try_read`; after a short read (fewer bytes
/// than asked for: the socket is drained) it forgets the socket's read readiness, so the next
/// wait goes to epoll instead of a `read` that would only say `EAGAIN`. One syscall saved per
/// exchange. Safe on a current-thread runtime: no new readiness can arrive between the read
/// and the forgetting, as the driver runs on this thread.
pub fn read_now(stream: &tokio::net::TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let n = stream.try_read(buf)?;
    if n > 0 && n < buf.len() {
        let _ = stream.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_group_shares_one_port_and_each_member_accepts() {
        let group =
            bind_group("127.0.0.1:0".parse().unwrap(), 2, ListenOptions::default()).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(group[1].local_addr().unwrap().port(), port);

        // The kernel spreads connections by hash; with enough of them both members get some.
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let accepted: Vec<usize> = group
            .iter()
            .map(|listener| std::iter::from_fn(|| listener.accept().ok()).count())
            .collect();
        assert_eq!(accepted.iter().sum::<usize>(), 64);
        assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let listener =
            bind_listener("127.0.0.1:0".parse().unwrap(), ListenOptions::default()).unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(server.nodelay().unwrap());
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn binding_a_busy_address_names_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind_listener(addr, ListenOptions::default()).unwrap_err();
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn outgoing_sockets_use_the_source_address_and_pick_ports_late() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.7".parse().unwrap();
        let socket = outgoing_socket(dest, Some(source)).unwrap();
        assert!(bind_address_no_port(&socket).unwrap());
        let stream = socket.connect(dest).await.unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), source);
        assert!(stream.nodelay().unwrap());
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), source);
    }

    #[test]
    fn a_source_address_not_on_this_host_is_named() {
        let error = outgoing_socket(
            "127.0.0.1:9".parse().unwrap(),
            Some("192.0.2.1".parse().unwrap()),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(error.to_string().contains("192.0.2.1"), "{error}");
    }
}

//! The process's listening sockets, kept across generations. A reload gives the new
//! generation's threads the same sockets (duplicated descriptors of them) and only then lets the
//! old generation stop accepting, so an accept queue is never closed: no connection attempt is
//! refused or reset in between. A binary upgrade hands them to the new binary the same way, as
//! inherited descriptors named in [`INHERITED`]. Only a bind that leaves the configuration
//! closes its sockets (when the last generation using them stops accepting).

use crate::config::Config;
use socket2::SockRef;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use throng_net::sockets;

/// The environment variable naming the sockets a new binary inherits:
/// `NAME/ADDRESS=FD,FD;...`, each NAME a frontend's (in hex) and ADDRESS one of its binds as
/// configured (port 0 included).
pub const INHERITED: &str = "THRONG_PROXY_LISTENERS";

/// The environment variable naming the admin listener's descriptor a new binary inherits.
pub const INHERITED_ADMIN: &str = "THRONG_PROXY_ADMIN_FD";

/// The admin listener an old binary handed over, if any.
pub fn inherited_admin() -> Result<Option<TcpListener>, String> {
    let Some(fd) = std::env::var_os(INHERITED_ADMIN) else {
        return Ok(None);
    };
    std::env::remove_var(INHERITED_ADMIN);
    let fd: RawFd = fd
        .to_str()
        .and_then(|fd| fd.parse().ok())
        .ok_or_else(|| format!("{INHERITED_ADMIN} is not a descriptor"))?;
    adopt(fd)
        .map(Some)
        .map_err(|e| format!("{INHERITED_ADMIN}: descriptor {fd}: {e}"))
}

/// What a frontend listens on, for the start-up line: its name, TLS or not, its addresses.
pub type Bound = (std::sync::Arc<str>, bool, Vec<SocketAddr>);

/// Per thread of a generation: its listeners, each with its frontend's index.
pub type PerThread = Vec<Vec<(TcpListener, usize)>>;

/// A bind: its frontend's name and its address as configured. Two frontends may both ask for
/// port 0 of one address, and each keeps its own port across reloads.
type BindKey = (std::sync::Arc<str>, SocketAddr);

/// A bind's group while a generation's sockets are made: the first `kept` were held before.
struct Taken {
    key: BindKey,
    frontend: usize,
    group: Vec<TcpListener>,
    kept: usize,
}

#[derive(Default)]
pub struct Listeners {
    /// Per bind: its `SO_REUSEPORT` sockets.
    held: Vec<(BindKey, Vec<TcpListener>)>,
}

impl Listeners {
    /// The sockets an old binary handed over (none when it did not), checked to be listening
    /// TCP sockets.
    pub fn inherited() -> Result<Listeners, String> {
        let Some(list) = std::env::var_os(INHERITED) else {
            return Ok(Listeners::default());
        };
        // Not for the processes this one starts.
        std::env::remove_var(INHERITED);
        let list = list
            .into_string()
            .map_err(|_| format!("{INHERITED} is not text"))?;
        let mut held = Vec::new();
        for entry in list.split(';').filter(|e| !e.is_empty()) {
            let malformed = || format!("{INHERITED}: `{entry}` is not NAME/ADDRESS=FD,...");
            let (bind, fds) = entry.rsplit_once('=').ok_or_else(malformed)?;
            let (name, addr) = bind.split_once('/').ok_or_else(malformed)?;
            let name = throng_net::hex::decode(name)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(malformed)?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| format!("{INHERITED}: `{addr}` is not an address"))?;
            let mut group = Vec::new();
            for fd in fds.split(',') {
                let fd: RawFd = fd
                    .parse()
                    .map_err(|_| format!("{INHERITED}: `{fd}` is not a descriptor"))?;
                group.push(adopt(fd).map_err(|e| format!("{INHERITED}: descriptor {fd}: {e}"))?);
            }
            held.push(((name.into(), addr), group));
        }
        Ok(Listeners { held })
    }

    /// The sockets of a generation running `config`: those held for its binds (more bound
    /// where it has more threads), new ones for new binds. On an error nothing held changes,
    /// and nothing new stays bound (a socket in the group that nobody accepts on would take
    /// its share of connections and never answer).
    pub fn for_generation(&mut self, config: &Config) -> Result<(PerThread, Vec<Bound>), String> {
        let mut taken: Vec<Taken> = Vec::new();
        match self.bind_all(config, &mut taken) {
            Ok(found) => {
                // Binds no longer configured close here (the old generation keeps its copies
                // until it stops accepting).
                self.held = taken.into_iter().map(|t| (t.key, t.group)).collect();
                Ok(found)
            }
            Err(e) => {
                for mut t in taken {
                    t.group.truncate(t.kept);
                    if !t.group.is_empty() {
                        self.held.push((t.key, t.group));
                    }
                }
                Err(e)
            }
        }
    }

    fn bind_all(
        &mut self,
        config: &Config,
        taken: &mut Vec<Taken>,
    ) -> Result<(PerThread, Vec<Bound>), String> {
        let threads = config.global.threads.max(1);
        let options = sockets::ListenOptions::default();
        let mut bound = Vec::new();
        for (index, frontend) in config.frontends.iter().enumerate() {
            let mut addrs = Vec::new();
            for &addr in &frontend.binds {
                let key = (frontend.name.clone(), addr);
                let group = self.take(&key).unwrap_or_default();
                taken.push(Taken {
                    key,
                    frontend: index,
                    kept: group.len(),
                    group,
                });
                let Some(t) = taken.last_mut() else { continue };
                let more = match t.group.first() {
                    None => sockets::bind_group(addr, threads, options),
                    // Joins the port the group has (port 0 was chosen at its first bind).
                    Some(first) => {
                        let port = first.local_addr().map_err(|e| e.to_string())?;
                        (t.group.len()..threads)
                            .map(|_| sockets::bind_listener(port, options))
                            .collect()
                    }
                };
                t.group
                    .extend(more.map_err(|e| format!("frontend {}: {e}", frontend.name))?);
                if let Some(first) = t.group.first() {
                    addrs.push(first.local_addr().map_err(|e| e.to_string())?);
                }
            }
            bound.push((frontend.name.clone(), frontend.tls.is_some(), addrs));
        }
        let mut per_thread: PerThread = (0..threads).map(|_| Vec::new()).collect();
        for t in taken.iter() {
            for (i, listener) in t.group.iter().enumerate() {
                let copy = listener
                    .try_clone()
                    .map_err(|e| format!("cannot share the listener on {}: {e}", t.key.1))?;
                if let Some(thread) = per_thread.get_mut(i % threads) {
                    thread.push((copy, t.frontend));
                }
            }
        }
        Ok((per_thread, bound))
    }

    /// The sockets held for `key`; for a fixed port, those of the same address under another
    /// frontend's name too (a frontend renamed keeps its sockets).
    fn take(&mut self, key: &BindKey) -> Option<Vec<TcpListener>> {
        let at = self.held.iter().position(|(k, _)| k == key).or_else(|| {
            let fixed = key.1.port() != 0;
            fixed.then(|| self.held.iter().position(|(k, _)| k.1 == key.1))?
        })?;
        Some(self.held.swap_remove(at).1)
    }

    /// The held sockets as [`INHERITED`] names them, and their descriptors, for a new binary.
    pub fn to_inherit(&self) -> (String, Vec<RawFd>) {
        let mut text = String::new();
        let mut fds = Vec::new();
        for ((name, addr), group) in &self.held {
            if !text.is_empty() {
                text.push(';');
            }
            let list: Vec<String> = group
                .iter()
                .map(|l| {
                    fds.push(l.as_raw_fd());
                    l.as_raw_fd().to_string()
                })
                .collect();
            let name = throng_net::hex::encode(name.as_bytes());
            text += &format!("{name}/{addr}={}", list.join(","));
        }
        (text, fds)
    }
}

/// Takes ownership of inherited descriptor `fd` if it is a listening TCP socket.
fn adopt(fd: RawFd) -> Result<TcpListener, String> {
    if fd < 3 {
        return Err("not a socket of ours".into());
    }
    // SAFETY: fcntl on a descriptor number only reads its flags; a closed one gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: the descriptor is open (above) and was handed to this process to own; nothing
    // else in the process uses it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let socket = SockRef::from(&listener);
    if !socket.is_listener().map_err(|e| e.to_string())? {
        // Not ours to close: leave the descriptor as it was.
        std::mem::forget(listener);
        return Err("not a listening socket".into());
    }
    // Not inherited again by whatever this process starts.
    socket.set_cloexec(true).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::parse(text, "test.toml", std::path::Path::new(".")).unwrap()
    }

    const TWO_ON_PORT_ZERO: &str = "[global]\nthreads = 2\n\
        [frontends.a]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"b\"\n\
        [frontends.c]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"b\"\n\
        [backends.b]\nservers = [{ name = \"s\", address = \"127.0.0.1:9\" }]\n";

    fn ports(bound: &[Bound]) -> Vec<u16> {
        bound.iter().map(|(_, _, addrs)| addrs[0].port()).collect()
    }

    #[test]
    fn each_frontend_keeps_its_own_sockets_from_generation_to_generation() {
        let mut listeners = Listeners::default();
        let (threads, first) = listeners.for_generation(&config(TWO_ON_PORT_ZERO)).unwrap();
        let first_ports = ports(&first);
        assert_ne!(first_ports[0], first_ports[1], "two frontends, two ports");
        // Each thread accepts for both frontends, each on its own socket.
        assert_eq!(threads.len(), 2);
        assert!(threads.iter().all(|t| t.len() == 2));
        let (_, again) = listeners.for_generation(&config(TWO_ON_PORT_ZERO)).unwrap();
        assert_eq!(ports(&again), first_ports);
        // More threads: more sockets join the same ports.
        let wider = TWO_ON_PORT_ZERO.replace("threads = 2", "threads = 3");
        let (threads, wide) = listeners.for_generation(&config(&wider)).unwrap();
        assert_eq!(ports(&wide), first_ports);
        assert!(threads.iter().all(|t| t.len() == 2));
    }

    #[test]
    fn a_bind_that_fails_changes_nothing_held() {
        let mut listeners = Listeners::default();
        let (_, first) = listeners.for_generation(&config(TWO_ON_PORT_ZERO)).unwrap();
        // A port taken by a socket without SO_REUSEPORT cannot be joined.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let broken = TWO_ON_PORT_ZERO.replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1);
        let error = listeners.for_generation(&config(&broken)).unwrap_err();
        assert!(error.contains("frontend a"), "{error}");
        let (_, after) = listeners.for_generation(&config(TWO_ON_PORT_ZERO)).unwrap();
        assert_eq!(ports(&after), ports(&first));
        let (text, fds) = listeners.to_inherit();
        assert_eq!(fds.len(), 4);
        assert!(
            text.starts_with("61/127.0.0.1:0=") || text.contains(";61/127.0.0.1:0="),
            "{text}"
        );
    }
}

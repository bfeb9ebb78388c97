//! The runtime commands, as words: HAProxy's runtime API where it has one (`show servers state`,
//! `set server B/S state|weight`, `add server`, `del server`), in one line each.

use crate::state::AdminState;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The longest command line read (a certificate's paths fit many times).
pub const MAX_LINE: usize = 4096;

/// What the commands say, for `help` and for every refusal.
pub const USAGE: &str = "commands:\n  \
    show servers [BACKEND]\n  \
    show changes\n  \
    set server BACKEND/SERVER state ready|drain|maint\n  \
    set server BACKEND/SERVER weight 1-256\n  \
    set server BACKEND/SERVER addr ADDRESS:PORT   (or addr IP port PORT)\n  \
    add server BACKEND/SERVER ADDRESS:PORT [weight 1-256] [maxconn N]\n  \
    del server BACKEND/SERVER\n  \
    set cert FRONTEND CERT.pem KEY.pem   (in place of all the frontend's certificates)\n  \
    rotate tickets [SECRET]   (a new session-ticket secret: 64 hex digits, else a random one)\n";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    ShowServers {
        backend: Option<String>,
    },
    /// The runtime changes a reload of the file would drop.
    ShowChanges,
    SetState {
        server: ServerRef,
        state: AdminState,
    },
    SetWeight {
        server: ServerRef,
        weight: u32,
    },
    /// Where new connections to the server go (those it has stay where they are).
    SetAddr {
        server: ServerRef,
        address: SocketAddr,
    },
    AddServer {
        server: ServerRef,
        address: SocketAddr,
        weight: u32,
        maxconn: Option<u32>,
    },
    DelServer {
        server: ServerRef,
    },
    /// A frontend's certificate and key, from files on the proxy's host.
    SetCert {
        frontend: String,
        cert: PathBuf,
        key: PathBuf,
    },
    /// A new session-ticket secret (the operator's, or a random one), in every process: the
    /// one it replaces still opens tickets until the next rotation.
    RotateTickets {
        secret: Option<crate::tickets::Secret>,
    },
}

impl Command {
    /// Whether it changes something (and is logged and counted as a change).
    pub fn changes(&self) -> bool {
        // A rotation is not something a reload of the file undoes: not among the changes.
        !matches!(
            self,
            Command::ShowServers { .. } | Command::ShowChanges | Command::RotateTickets { .. }
        )
    }
}

/// `BACKEND/SERVER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRef {
    pub backend: String,
    pub server: String,
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// Reads one command line. Errors say what was wrong, and the usage follows them.
pub fn parse(line: &str) -> Result<Command, String> {
    if line.len() > MAX_LINE {
        return Err(format!("a command is at most {MAX_LINE} bytes"));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["show", "servers"] | ["show", "servers", "state"] => {
            Ok(Command::ShowServers { backend: None })
        }
        ["show", "servers", backend] | ["show", "servers", "state", backend] => {
            Ok(Command::ShowServers {
                backend: Some(name(backend, "backend")?),
            })
        }
        ["show", "changes"] => Ok(Command::ShowChanges),
        ["set", "server", server, "state", state] => Ok(Command::SetState {
            server: server_ref(server)?,
            state: AdminState::parse(state)
                .ok_or_else(|| format!("state `{state}`: use ready, drain or maint"))?,
        }),
        ["set", "server", server, "weight", weight] => Ok(Command::SetWeight {
            server: server_ref(server)?,
            weight: weight_of(weight)?,
        }),
        ["set", "server", server, "addr", address] => Ok(Command::SetAddr {
            server: server_ref(server)?,
            address: address_of(address)?,
        }),
        ["set", "server", server, "addr", ip, "port", port] => Ok(Command::SetAddr {
            server: server_ref(server)?,
            address: address_of(&match ip.contains(':') {
                true => format!("[{ip}]:{port}"),
                false => format!("{ip}:{port}"),
            })?,
        }),
        ["add", "server", server, address, options @ ..] => {
            let address = address_of(address)?;
            let (mut weight, mut maxconn) = (1, None);
            let mut rest = options.chunks(2);
            for pair in &mut rest {
                match pair {
                    ["weight", w] => weight = weight_of(w)?,
                    ["maxconn", n] => {
                        maxconn = Some(
                            n.parse::<u32>()
                                .ok()
                                .filter(|&n| n > 0)
                                .ok_or_else(|| format!("maxconn `{n}`: a number from 1"))?,
                        )
                    }
                    other => {
                        return Err(format!("`{}`: use weight N or maxconn N", other.join(" ")))
                    }
                }
            }
            Ok(Command::AddServer {
                server: server_ref(server)?,
                address,
                weight,
                maxconn,
            })
        }
        ["del", "server", server] => Ok(Command::DelServer {
            server: server_ref(server)?,
        }),
        ["set", "cert", frontend, cert, key] => Ok(Command::SetCert {
            frontend: name(frontend, "frontend")?,
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }),
        ["rotate", "tickets"] => Ok(Command::RotateTickets { secret: None }),
        ["rotate", "tickets", secret] => Ok(Command::RotateTickets {
            secret: Some(
                crate::tickets::from_line(secret)
                    .filter(|s| s.previous.is_none())
                    .map(|s| s.current)
                    .ok_or("a ticket secret is 64 hex digits")?,
            ),
        }),
        [] => Err("no command".into()),
        _ => Err(format!(
            "unknown command `{}`",
            redacted(line).escape_debug()
        )),
    }
}

fn server_ref(text: &str) -> Result<ServerRef, String> {
    let (backend, server) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: name a server as BACKEND/SERVER"))?;
    Ok(ServerRef {
        backend: name(backend, "backend")?,
        server: name(server, "server")?,
    })
}

/// A backend, server or frontend name: what a configuration allows (visible, no slash).
fn name(text: &str, what: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 256
        && text
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '/');
    ok.then(|| text.to_string())
        .ok_or_else(|| format!("`{text}` is not a {what} name"))
}

/// A server's address, checked as the file's are: a port, and an address one can connect to.
fn address_of(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an address:port"))?;
    if address.port() == 0 || address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(format!("{address} cannot be connected to"));
    }
    Ok(address)
}

fn weight_of(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|w| (1..=256).contains(w))
        .ok_or_else(|| format!("weight `{text}`: a number from 1 to 256"))
}

/// A command line as a log may carry it: a ticket secret given to `rotate tickets` is not.
pub fn redacted(line: &str) -> String {
    // Any word that could be a secret (as long as one, all hex digits) goes, whatever the
    // command around it: a misspelt `rotate tickets SECRET` is refused, and logged, too.
    let secret = |word: &str| word.len() >= 32 && word.bytes().all(|b| b.is_ascii_hexdigit());
    line.split_whitespace()
        .map(|word| if secret(word) { "<secret>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_haproxy_spells_them() {
        assert_eq!(
            parse("set server app/a1 state drain").unwrap(),
            Command::SetState {
                server: ServerRef {
                    backend: "app".into(),
                    server: "a1".into()
                },
                state: AdminState::Drain
            }
        );
        assert_eq!(
            parse("  add server app/new 127.0.0.1:9000 weight 3 maxconn 10 ").unwrap(),
            Command::AddServer {
                server: ServerRef {
                    backend: "app".into(),
                    server: "new".into()
                },
                address: "127.0.0.1:9000".parse().unwrap(),
                weight: 3,
                maxconn: Some(10)
            }
        );
        assert_eq!(
            parse("show servers state").unwrap(),
            Command::ShowServers { backend: None }
        );
        assert!(!parse("show changes").unwrap().changes());
        let moved = Command::SetAddr {
            server: ServerRef {
                backend: "app".into(),
                server: "a1".into(),
            },
            address: "10.0.0.9:8080".parse().unwrap(),
        };
        assert_eq!(
            parse("set server app/a1 addr 10.0.0.9:8080").unwrap(),
            moved
        );
        assert_eq!(
            parse("set server app/a1 addr 10.0.0.9 port 8080").unwrap(),
            moved
        );
        assert!(parse("set server app/a1 addr ::1 port 8080").is_ok());
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let error = |line: &str| parse(line).unwrap_err();
        assert!(error("set server app state drain").contains("BACKEND/SERVER"));
        assert!(error("set server app/a state off").contains("ready, drain or maint"));
        assert!(error("set server app/a weight 0").contains("1 to 256"));
        assert!(error("set server app/a weight 9999999999999").contains("1 to 256"));
        assert!(error("add server app/b localhost").contains("address:port"));
        assert!(error("add server app/b 127.0.0.1:1 weight").contains("weight N"));
        assert!(error("add server app/b 0.0.0.0:80").contains("cannot be connected to"));
        assert!(error("set server app/b addr 127.0.0.1:0").contains("cannot be connected to"));
        assert!(error("reboot now").contains("unknown command"));
        assert!(error("").contains("no command"));
        assert!(error("rotate tickets 00ff").contains("64 hex digits"));
        assert!(parse(&format!("rotate tickets {}", "ab".repeat(32))).is_ok());
        let secret = "ab".repeat(32);
        for line in [
            format!("rotate tickets {secret} now"),
            format!("Rotate Tickets {secret}"),
        ] {
            let said = error(&line);
            assert!(
                !said.contains(&secret) && said.contains("<secret>"),
                "{said}"
            );
            assert!(!redacted(&line).contains(&secret));
        }
        assert!(!error("show servers\nFAKE LINE").contains('\n'));
        assert!(error(&"x".repeat(MAX_LINE + 1)).contains("at most"));
    }
}

//! The runtime API's Unix socket (`global.admin_socket`): made so that only who the operator
//! chose can connect (HAProxy's `stats socket PATH mode 600 level admin`), and found again by
//! `throng proxy ctl` in the same file.
//!
//! - The folder is made (0700) if missing; one that is a symlink, another user's, or writable
//!   by anyone without the sticky bit is refused.
//! - A path that exists is refused if it is a symlink, not a socket, or another user's; a
//!   socket a live proxy answers on is refused by name; a stale one (nobody answers) is
//!   replaced.
//! - The socket is bound under umask 0177, so no other user can connect in the moment before
//!   its mode (0600 unless set) and owner are set.
//! - It is removed when the proxy stops, if the path is still this socket; a binary upgrade
//!   hands the socket itself to the new binary, which keeps it.

use crate::config::AdminSocket;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The environment variable that hands the socket's descriptor to a new binary.
pub(crate) const INHERITED_SOCKET: &str = "THRONG_PROXY_ADMIN_SOCKET_FD";

/// `admin_socket = "auto"`: the user's runtime folder (`$XDG_RUNTIME_DIR/throng/`), else
/// `/run/throng/` for root, else a folder in the temporary directory that only this user may
/// enter; the socket in it is `proxy.sock`.
pub fn auto_path() -> PathBuf {
    let uid = throng_net::users::effective_uid();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && owned_by(dir, uid));
    let folder = match runtime {
        Some(dir) => dir.join("throng"),
        None if uid == 0 => PathBuf::from("/run/throng"),
        None => std::env::temp_dir().join(format!("throng-{uid}")),
    };
    folder.join("proxy.sock")
}

fn owned_by(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// The bound socket, and what identifies its file (to remove it only while it is this one).
pub struct Bound {
    pub listener: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
}

impl Bound {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket's file if it is still this socket (a successor binds its own path).
    pub fn remove(&self) {
        let same = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes the socket `spec` describes (or takes the one an old binary handed over: at the same
/// path, or anywhere for `auto`).
pub fn bind(spec: &AdminSocket) -> Result<Bound, String> {
    if let Some(bound) = inherited(Some(spec))? {
        return Ok(bound);
    }
    let path = &spec.path;
    let say = |why: String| format!("admin_socket {}: {why}", path.display());
    let folder = path.parent().ok_or_else(|| say("names no folder".into()))?;
    let owners = [
        Some(throng_net::users::effective_uid()),
        spec.user,
        spec.runs_as,
    ];
    prepare_folder(folder, &owners).map_err(&say)?;
    clear_the_way(path, &owners).map_err(&say)?;
    // Made with its mode at once (the mask leaves only `mode`): no moment with another mode,
    // and no chmod by path that a swapped file could redirect.
    // SAFETY: umask only swaps the process's file creation mask; it is put back at once.
    let before = unsafe { libc::umask(0o777 & !spec.mode) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(before) };
    let listener = bound.map_err(|e| say(format!("cannot bind: {e}")))?;
    if spec.user.is_some() || spec.group.is_some() {
        std::os::unix::fs::lchown(path, spec.user, spec.group)
            .map_err(|e| say(format!("cannot give it its owner: {e}")))?;
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| say(e.to_string()))?;
    Ok(Bound {
        listener,
        path: path.clone(),
        identity: (meta.dev(), meta.ino()),
    })
}

/// The folder exists (made 0700 if it did not), is a real folder of this user's (or root's, or
/// one of `owners`: the user the proxy becomes, the socket's), and nobody else can put things
/// in it: not a group, not everyone, sticky bit or not.
fn prepare_folder(folder: &Path, owners: &[Option<u32>]) -> Result<(), String> {
    let uid = throng_net::users::effective_uid();
    let meta = match std::fs::symlink_metadata(folder) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(|e| format!("cannot make its folder: {e}"))?;
            std::fs::symlink_metadata(folder).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(format!("its folder: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "its folder {} is a symlink: name the real folder",
            folder.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", folder.display()));
    }
    if meta.uid() != 0 && !owners.contains(&Some(meta.uid())) {
        return Err(format!(
            "its folder {} belongs to uid {}, not to this user ({uid})",
            folder.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its folder {} is writable by others than its owner: another user could replace the socket (make it 0700 or 0750)",
            folder.display()
        ));
    }
    Ok(())
}

/// Nothing is at `path`, or a stale socket of this user's (or one of `owners`') that is
/// removed now.
fn clear_the_way(path: &Path, owners: &[Option<u32>]) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
        Ok(meta) => meta,
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err("is a symlink: refused (it could point anywhere)".into());
    }
    if !std::os::unix::fs::FileTypeExt::is_socket(&kind) {
        return Err("exists and is not a socket: move it away or name another path".into());
    }
    if !owners.contains(&Some(meta.uid())) {
        return Err(format!(
            "is a socket of uid {}, not of this user ({})",
            meta.uid(),
            throng_net::users::effective_uid()
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(
            "a running proxy answers on it: stop it, or give this one another admin_socket".into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(
                "admin_socket {}: stale (nobody answers): replaced",
                path.display()
            );
            std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))
        }
        Err(e) => Err(format!("cannot tell whether a proxy answers on it: {e}")),
    }
}

/// The socket an old binary handed over, if `spec` wants it: at its path, or anywhere for
/// `auto` (a process that dropped root works out another `auto`). Otherwise, or with no `spec`,
/// it is closed here (and the path bound anew).
fn inherited(spec: Option<&AdminSocket>) -> Result<Option<Bound>, String> {
    let Some(fd) = std::env::var_os(INHERITED_SOCKET) else {
        return Ok(None);
    };
    std::env::remove_var(INHERITED_SOCKET);
    let fd: RawFd = fd
        .to_str()
        .and_then(|fd| fd.parse().ok())
        .ok_or_else(|| format!("{INHERITED_SOCKET} is not a descriptor"))?;
    // SAFETY: the old binary handed this descriptor over for this process to own.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    let at = listener.local_addr().ok();
    let Some(path) = at
        .as_ref()
        .and_then(|a| a.as_pathname())
        .map(Path::to_path_buf)
    else {
        return Ok(None);
    };
    if !spec.is_some_and(|s| s.auto || s.path == path) {
        return Ok(None);
    }
    // A process that dropped root may not see into a folder root made: the socket still
    // serves, and is left where it is at the end (root's to remove).
    let identity = std::fs::symlink_metadata(&path).map_or((0, 0), |m| (m.dev(), m.ino()));
    Ok(Some(Bound {
        listener,
        path,
        identity,
    }))
}

/// The descriptor a new binary takes over.
pub fn descriptor(bound: &Bound) -> RawFd {
    bound.listener.as_raw_fd()
}

/// The socket of `config`'s `admin_socket`, if it names one; its path is said in the log.
pub(crate) fn bind_configured(config: &crate::config::Config) -> Result<Option<Bound>, String> {
    let Some(spec) = &config.global.admin_socket else {
        // One handed over that the file no longer names: closed, not left listening.
        drop(inherited(None)?);
        return Ok(None);
    };
    let bound = bind(spec)?;
    tracing::info!(
        "runtime API on {} (throng proxy ctl -c {})",
        bound.path().display(),
        config.source
    );
    Ok(Some(bound))
}

/// A copy of the bound socket to answer on (the original stays, to be handed over).
pub(crate) fn listener(bound: Option<&Bound>) -> Option<UnixListener> {
    let bound = bound?;
    match bound.listener.try_clone() {
        Ok(copy) => Some(copy),
        Err(e) => {
            tracing::warn!("admin socket {}: {e}", bound.path().display());
            None
        }
    }
}

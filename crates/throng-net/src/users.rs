//! Users and groups by name or number, as a configuration names them (`admin_socket_user`,
//! `user`, `group`): the system's databases through libc's reentrant lookups.

use std::ffi::CString;

/// The uid of `name`, or `name` itself if it is a number.
pub fn uid_of(name: &str) -> Result<u32, String> {
    if let Ok(uid) = name.parse() {
        return Ok(uid);
    }
    let c_name = CString::new(name).map_err(|_| format!("`{name}` is not a user name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data filled by getpwnam_r; buf outlives the call and the
    // result points into it only while it lives (nothing is kept past this function).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let status = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return Err(format!("no user `{name}` on this machine"));
    }
    Ok(entry.pw_uid)
}

/// The gid of `name`, or `name` itself if it is a number.
pub fn gid_of(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    let c_name = CString::new(name).map_err(|_| format!("`{name}` is not a group name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in uid_of, for group.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    let status = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return Err(format!("no group `{name}` on this machine"));
    }
    Ok(entry.gr_gid)
}

/// The primary group of the user `uid`.
pub fn primary_gid(uid: u32) -> Result<u32, String> {
    passwd_of(uid)
        .map(|(_, gid)| gid)
        .ok_or_else(|| format!("no user with uid {uid} on this machine"))
}

/// The name of the user `uid`, for its supplementary groups.
pub fn name_of(uid: u32) -> Option<CString> {
    passwd_of(uid).map(|(name, _)| name)
}

fn passwd_of(uid: u32) -> Option<(CString, u32)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in uid_of; the name is copied out of buf before it goes.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let status =
        unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }.to_owned();
    Some((name, entry.pw_gid))
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(uid_of("root").unwrap(), 0);
        assert_eq!(uid_of("1234").unwrap(), 1234);
        assert_eq!(gid_of("root").unwrap(), 0);
        assert!(uid_of("no-such-user-here").unwrap_err().contains("no user"));
        assert!(uid_of("a\0b").is_err());
        assert_eq!(primary_gid(0).unwrap(), 0);
        assert_eq!(name_of(0).unwrap().to_str().unwrap(), "root");
    }
}

//! Test helpers that need `unsafe`, for the tests of this module and of [`crate::pipe_pool`].

use std::io;

/// `capget`/`capset` header and data (linux/capability.h, version 3: two data words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

/// Drops CAP_SYS_ADMIN and CAP_SYS_RESOURCE from the effective set of the calling thread
/// only (capabilities are per thread), so the kernel treats it as unprivileged for pipes.
pub(crate) fn drop_pipe_privileges_of_this_thread() {
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // Safety: capget writes one header and two data structs, which is what we pass.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", io::Error::last_os_error());
    data[0].effective &= !((1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_RESOURCE));
    // Safety: capset reads one header and two data structs, which is what we pass; with
    // pid 0 it changes only the calling thread, and only lowers its effective set.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", io::Error::last_os_error());
}

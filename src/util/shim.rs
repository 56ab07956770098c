//! How the C++ shims (csrc/) report failure: a return code, and this thread's last message.
use anyhow::{bail, Result};
use std::ffi::{c_char, CStr};
use std::time::Duration;

extern "C" {
    fn fpgan_last_error() -> *const c_char;
}

/// The first line of the message of this thread's last shim failure.
pub fn last_error() -> String {
    // SAFETY: the shims keep the message in a thread-local string until their next failure.
    let full = unsafe { CStr::from_ptr(fpgan_last_error()) }.to_string_lossy();
    full.lines().next().unwrap_or("").trim().to_string()
}

/// Ok for a shim's return code 0, else an error naming `what` with the shim's message.
pub fn check(what: &str, rc: i32) -> Result<()> {
    if rc != 0 {
        bail!("{what}: {}", last_error());
    }
    Ok(())
}

/// `d` as the shims' milliseconds (saturating).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

//! A client of a run's TCPStore (the rendezvous that rank 0 serves) of its own: each machine's
//! launcher, which tells the others of a failure there, and each worker's stall watch.
use crate::util::shim::{check, last_error, millis};
use anyhow::{bail, Result};
use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

extern "C" {
    fn fpgan_store_client_new(
        host: *const c_char,
        port: i32,
        connect_ms: i64,
        request_ms: i64,
    ) -> *mut c_void;
    fn fpgan_store_set(c: *mut c_void, key: *const c_char, value: *const c_char) -> i32;
    fn fpgan_store_check(c: *mut c_void, key: *const c_char) -> i32;
    fn fpgan_store_get(c: *mut c_void, key: *const c_char, buf: *mut c_char, cap: i64) -> i64;
    fn fpgan_store_add(c: *mut c_void, key: *const c_char, delta: i64, out: *mut i64) -> i32;
    fn fpgan_store_free(c: *mut c_void);
}

/// How long a request to the store may take (one to a store that is gone is retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the TCPStore at `host:port`.
pub struct StoreClient {
    handle: *mut c_void,
}

// SAFETY: the client is used from one thread at a time (moved to the thread that watches).
unsafe impl Send for StoreClient {}

impl StoreClient {
    /// Connect, trying for up to `timeout` while the store is not there yet; then each request
    /// waits up to [`REQUEST_TIMEOUT`].
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Self> {
        let c_host = CString::new(host)?;
        let (connect, request) = (millis(timeout), millis(REQUEST_TIMEOUT));
        // SAFETY: valid C string; the shim catches every C++ exception.
        let handle =
            unsafe { fpgan_store_client_new(c_host.as_ptr(), port as i32, connect, request) };
        if handle.is_null() {
            bail!(
                "cannot reach the rendezvous at {host}:{port}: {}",
                last_error()
            );
        }
        Ok(StoreClient { handle })
    }

    /// Set `key` to `value`.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        let (k, v) = (CString::new(key)?, CString::new(value)?);
        // SAFETY: live handle, valid C strings.
        let rc = unsafe { fpgan_store_set(self.handle, k.as_ptr(), v.as_ptr()) };
        check(&format!("cannot set {key} in the rendezvous"), rc)
    }

    /// Add `delta` to the counter `key` (0 when not set yet); its new value.
    pub fn add(&self, key: &str, delta: i64) -> Result<i64> {
        let k = CString::new(key)?;
        let mut out = 0i64;
        // SAFETY: live handle, valid C string, `out` outlives the call.
        let rc = unsafe { fpgan_store_add(self.handle, k.as_ptr(), delta, &mut out) };
        check(&format!("cannot add to {key} in the rendezvous"), rc)?;
        Ok(out)
    }

    /// The value of `key`, None while it is not set; an error when the store cannot be asked
    /// (gone with rank 0's process).
    pub fn value(&self, key: &str) -> Result<Option<String>> {
        let k = CString::new(key)?;
        // SAFETY: live handle, valid C string.
        match unsafe { fpgan_store_check(self.handle, k.as_ptr()) } {
            0 => return Ok(None),
            1 => {}
            _ => bail!("the rendezvous cannot be asked: {}", last_error()),
        }
        let mut buf = vec![0u8; 4096];
        // SAFETY: `buf` holds `cap` bytes; the shim writes at most that many.
        let len = unsafe {
            fpgan_store_get(
                self.handle,
                k.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len() as i64,
            )
        };
        if len < 0 {
            bail!("the rendezvous cannot be asked: {}", last_error());
        }
        buf.truncate(len as usize);
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }
}

impl Drop for StoreClient {
    fn drop(&mut self) {
        // SAFETY: made by fpgan_store_client_new, freed once.
        unsafe { fpgan_store_free(self.handle) }
    }
}

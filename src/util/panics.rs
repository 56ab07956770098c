//! libtorch's exceptions, which tch raises as panics, as one line of text.
use std::any::Any;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, turning a panic (a libtorch exception, as tch raises them) into its one-line
/// [`message`]; meanwhile the binary's panic hook prints nothing ([`is_caught`]).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    CATCHING.set(true);
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(false);
    r.map_err(|p| message(p.as_ref()))
}

/// Whether a panic on this thread now is one that [`catch`] takes (the hook stays quiet).
pub fn is_caught() -> bool {
    CATCHING.get()
}

/// The first line of a panic's message, without tch's `Torch("...")` wrapping, e.g.
/// `DefaultCPUAllocator: can't allocate memory`.
pub fn message(payload: &(dyn Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure");
    let first = msg
        .split("Torch(\"")
        .nth(1)
        .unwrap_or(msg)
        .split(['\n', '"'])
        .next()
        .unwrap_or(msg)
        .replace("\\n", " ");
    first.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tch_errors_read_as_their_first_line() {
        let tch = String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA error: out of memory\\nCUDA kernel errors might be asynchronously reported\")",
        );
        // tch's Debug text escapes libtorch's line breaks: they read as spaces
        assert_eq!(
            message(&tch),
            "CUDA error: out of memory CUDA kernel errors might be asynchronously reported"
        );
        assert_eq!(message(&"first\nsecond"), "first");
        assert_eq!(message(&3_i32), "unknown failure");
    }

    #[test]
    fn catch_returns_the_message_and_marks_the_panic_as_caught() {
        assert!(!is_caught());
        assert_eq!(catch(is_caught), Ok(true));
        let r: Result<(), String> = catch(|| panic!("Torch(\"CUDA error: out of memory\")"));
        assert_eq!(r, Err("CUDA error: out of memory".into()));
        assert!(!is_caught(), "only while catch runs");
    }
}

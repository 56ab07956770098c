//! libtorch's exceptions, which tch raises as panics, as one line of text.
use std::any::Any;

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
}

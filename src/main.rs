//! The `fpgan` binary: parse the command line, run it, print errors on one line.

/// A failure inside libtorch (tch turns its exceptions into panics) as one line, e.g. an
/// allocation that does not fit: `error: libtorch: DefaultCPUAllocator: can't allocate memory`.
/// RUST_BACKTRACE=1 prints the whole report, as for any other panic.
fn one_line_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        let first = msg
            .split("Torch(\"")
            .nth(1)
            .unwrap_or(msg)
            .split(['\n', '"'])
            .next()
            .unwrap_or(msg)
            .replace("\\n", " ");
        let hint = if first.contains("alloc") || first.contains("out of memory") {
            " (out of memory: try a smaller --batch-gpu or --batch)"
        } else {
            " (a bug: please report it with RUST_BACKTRACE=1)"
        };
        eprintln!("error: libtorch: {}{hint}", first.trim());
    }));
}

fn main() {
    fpgan::util::malloc::keep_freed_memory();
    let cli = fpgan::cli::parse();
    one_line_panics();
    if let Err(e) = fpgan::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

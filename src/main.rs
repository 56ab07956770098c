//! The `fpgan` binary: parse the command line, run it, print errors on one line.

/// A failure inside libtorch (tch turns its exceptions into panics) as one line, e.g. an
/// allocation that does not fit: `error: libtorch: DefaultCPUAllocator: can't allocate memory`.
/// RUST_BACKTRACE=1 prints the whole report, as for any other panic.
fn one_line_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        if fpgan::util::panics::is_caught() {
            return; // the caller reports it
        }
        let first = fpgan::util::panics::message(info.payload());
        let hint = if first.contains("alloc") || first.contains("out of memory") {
            " (out of memory: try a smaller --batch-gpu or --batch)"
        } else {
            " (a bug: please report it with RUST_BACKTRACE=1)"
        };
        fpgan::util::early_log::print(&format!("error: libtorch: {first}{hint}"));
    }));
}

fn main() {
    fpgan::util::malloc::keep_freed_memory();
    let cli = fpgan::cli::parse();
    one_line_panics();
    if let Err(e) = fpgan::cli::run(cli) {
        let line = format!("error: {e:#}");
        if e.is::<fpgan::dist::group::CollectiveFailed>() {
            // failed after another worker did, which the launcher names: said once a machine
            fpgan::util::early_log::print_shared(&line);
        } else {
            fpgan::util::early_log::print(&line);
        }
        std::process::exit(1);
    }
}

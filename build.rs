// Link libtorch so that the binary and the tests find it and keep its CUDA backend:
// an rpath to libtorch's lib directory and `--no-as-needed -ltorch` (reference section 15).
// Without the latter the linker drops libtorch_cuda.so and CUDA is unavailable on a GPU machine.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let libtorch = std::env::var("LIBTORCH").unwrap_or_else(|_| ".venv/libtorch".into());
    let lib = PathBuf::from(libtorch).join("lib");
    if !lib.join("libtorch.so").exists() {
        println!(
            "cargo:warning=libtorch not found at {}; run `make setup` first",
            lib.display()
        );
    }
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch");
}

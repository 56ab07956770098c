// Link libtorch so that the binary and the tests find it and keep its CUDA backend:
// an rpath to libtorch's lib directory and `--no-as-needed -ltorch` (reference section 15).
// Without the latter the linker drops libtorch_cuda.so and CUDA is unavailable on a GPU machine.
// It also compiles csrc/*.cpp against libtorch's headers, for what tch does not expose: the CUDA
// caching allocator's peak memory statistics, CUDA events, bf16 autocast on CPU or CUDA,
// channels_last, TF32, the random generator's state, multi-tensor (foreach) updates, the
// Kineto profiler, LeakyReLU with a slope, c10d process groups (Gloo, and NCCL with the CUDA
// headers of the wheel's PyPI dependencies) and CUDA graphs (with those headers too).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/cuda_memory.cpp");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/memory_format.cpp");
    println!("cargo:rerun-if-changed=csrc/tf32.cpp");
    println!("cargo:rerun-if-changed=csrc/rng_state.cpp");
    println!("cargo:rerun-if-changed=csrc/cuda_events.cpp");
    println!("cargo:rerun-if-changed=csrc/c10d.cpp");
    println!("cargo:rerun-if-changed=csrc/foreach.cpp");
    println!("cargo:rerun-if-changed=csrc/guarded.h");
    println!("cargo:rerun-if-changed=csrc/guarded.cpp");
    println!("cargo:rerun-if-changed=csrc/profiler.cpp");
    println!("cargo:rerun-if-changed=csrc/ops.cpp");
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    println!("cargo:rerun-if-changed=csrc/gloo_stub");
    let libtorch =
        PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| ".venv/libtorch".into()));
    let lib = libtorch.join("lib");
    if !lib.join("libtorch.so").exists() {
        println!(
            "cargo:warning=libtorch not found at {}; run `make setup` first",
            lib.display()
        );
    }
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch");
    let mut build = cc::Build::new();
    // NCCL process groups and CUDA graphs when the torch wheel's CUDA and NCCL headers (its PyPI
    // dependencies) are there
    let nvidia = libtorch.join("..").join("nvidia");
    let (cuda_inc, nccl_inc) = (nvidia.join("cu13/include"), nvidia.join("nccl/include"));
    if cuda_inc.join("cuda_runtime_api.h").exists() && nccl_inc.join("nccl.h").exists() {
        build
            .include(&cuda_inc)
            .include(&nccl_inc)
            .define("FPGAN_NCCL", None)
            .define("FPGAN_CUDA", None)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None);
        println!("cargo:rustc-link-lib=c10_cuda");
        println!("cargo:rustc-link-lib=torch_cuda");
    } else {
        println!("cargo:warning=no CUDA/NCCL headers beside libtorch: data-parallel training on GPUs will use Gloo, and --cuda-graphs is unavailable");
    }
    build
        .cpp(true)
        .file("csrc/cuda_memory.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/memory_format.cpp")
        .file("csrc/tf32.cpp")
        .file("csrc/rng_state.cpp")
        .file("csrc/cuda_events.cpp")
        .file("csrc/c10d.cpp")
        .file("csrc/guarded.cpp")
        .file("csrc/foreach.cpp")
        .file("csrc/profiler.cpp")
        .file("csrc/ops.cpp")
        .file("csrc/cuda_graph.cpp")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .include("csrc/gloo_stub")
        .define("USE_C10D_GLOO", None)
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .compile("fpgan_csrc");
}

//! What every petal-tensor bench shares: memory from mimalloc keeping freed blocks
//! mapped, as in `cargo xtask`. With the system allocator each large temporary (a
//! layer's output, Winograd's transformed filters) would be mapped and unmapped at
//! every call; on a 2-core VM the unmapping's TLB shootdowns took most of the time
//! (ResNet18's 7x7x512 F(4x4) forward: 105 ms against 14.8 ms with freed memory kept).
//! A bench sets it up once for all its targets with `config = support::criterion()`.
//! Also the operands every bench fills the same way ([`filled`]) and its thread pools
//! ([`threads`]).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (position 15 of `mi_option_e` in mimalloc 2.x and 3.x).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Criterion's default configuration, with freed memory kept mapped for the rest of
/// the process (mimalloc would hand it back to the OS 10 ms after it is freed).
pub fn criterion() -> criterion::Criterion {
    // SAFETY: sets a process-wide allocator option; mimalloc allows this at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    criterion::Criterion::default()
}

/// A tensor of `shape` with fixed values in [-0.5, 0.5), `seed` shifting them.
pub fn filled(shape: &[usize], seed: usize) -> petal_tensor::Tensor {
    let len = shape.iter().product();
    let values = (0..len)
        .map(|i| (((i + seed) * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    petal_tensor::Tensor::from_vec(shape, values).unwrap()
}

/// A pool of `count` rayon threads to run a bench in.
pub fn threads(count: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .build()
        .unwrap()
}

//! The CPU path's SGEMM against a plain triple loop in f64, for every microkernel this processor
//! runs, over the shapes and strides the engine uses (row-major, transposed operands, edges that
//! are not multiples of the register tile, products deeper than one packed block) and `beta`.

use videogpt::cpu::{sgemm, sgemm_with, Microkernel};

fn matrix(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Case {
    m: usize,
    k: usize,
    n: usize,
    a_transposed: bool,
    b_transposed: bool,
    beta: f32,
}

fn check(kernel: Microkernel, case: &Case) {
    let Case { m, k, n, a_transposed, b_transposed, beta } = *case;
    let a = matrix(m * k, 1);
    let b = matrix(k * n, 2);
    let c0 = matrix(m * n, 3);
    let (rsa, csa) = if a_transposed { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if b_transposed { (1, k as isize) } else { (n as isize, 1) };
    let mut c = c0.clone();
    sgemm_with(kernel, m, k, n, &a, rsa, csa, &b, rsb, csb, beta, &mut c, n as isize, 1);
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| a[i * rsa as usize + p * csa as usize] as f64 * b[p * rsb as usize + j * csb as usize] as f64).sum::<f64>()
                + beta as f64 * c0[i * n + j] as f64;
            let got = c[i * n + j] as f64;
            // f32 sums of k products of numbers in [-1, 1]
            let tol = 1e-5 * (k as f64).sqrt() * 4.0 + 1e-6;
            assert!((got - want).abs() <= tol, "{kernel:?} m={m} k={k} n={n} at ({i}, {j}): {got} vs {want}");
        }
    }
}

fn kernels() -> Vec<Microkernel> {
    let all = [Microkernel::Avx512, Microkernel::Avx2, Microkernel::Simd128, Microkernel::Portable];
    all.into_iter().filter(|k| k.is_supported()).collect()
}

/// scripts/test.sh reruns the goldens with `VIDEOGPT_CPU_KERNEL=avx2` and `=portable`: those runs
/// must use the named kernel, not fall back to the default one.
#[test]
fn the_kernel_the_environment_names_is_the_one_in_use() {
    let named = Microkernel::from_env().expect("VIDEOGPT_CPU_KERNEL names a kernel this processor runs");
    let used = Microkernel::in_use();
    eprintln!("CPU kernel in use: {} (VIDEOGPT_CPU_KERNEL={:?})", used.name(), std::env::var("VIDEOGPT_CPU_KERNEL").ok());
    assert_eq!(used, named.unwrap_or_else(Microkernel::best));
}

#[test]
fn every_microkernel_matches_a_triple_loop() {
    let cases = [
        Case { m: 1, k: 1, n: 1, a_transposed: false, b_transposed: false, beta: 0.0 },
        Case { m: 7, k: 3, n: 5, a_transposed: false, b_transposed: false, beta: 0.0 },
        // a conv: weights × im2col columns, deeper than one packed block
        Case { m: 64, k: 600, n: 300, a_transposed: false, b_transposed: false, beta: 0.0 },
        // the transposed conv (A transposed) and the codebook / linear layers (B transposed)
        Case { m: 45, k: 37, n: 1100, a_transposed: true, b_transposed: false, beta: 0.0 },
        Case { m: 33, k: 257, n: 70, a_transposed: false, b_transposed: true, beta: 0.0 },
        Case { m: 9, k: 20, n: 40, a_transposed: true, b_transposed: true, beta: 0.5 },
    ];
    let kernels = kernels();
    assert!(kernels.contains(&Microkernel::Portable));
    for kernel in kernels {
        for case in &cases {
            check(kernel, case);
        }
    }
}

#[test]
fn large_products_split_over_threads_equal_one_thread() {
    // big enough to be split over the cores (when there are several): the split is by columns
    // and every column sums in the same order, so the result is bit-identical
    let (m, k, n) = (40, 300, 5000);
    let (a, b) = (matrix(m * k, 4), matrix(k * n, 5));
    let mut c = vec![0.0f32; m * n];
    sgemm(m, k, n, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1);
    let mut one_by_one = vec![0.0f32; m * n];
    for j0 in (0..n).step_by(700) {
        let nc = 700.min(n - j0);
        // a narrow product runs on one thread
        sgemm(m, k, nc, &a, k as isize, 1, &b[j0..], n as isize, 1, 0.0, &mut one_by_one[j0..], n as isize, 1);
    }
    assert_eq!(c, one_by_one);
}

#[test]
#[ignore = "a timing, not a test: cargo test --release --test gemm -- --ignored --nocapture"]
fn gflops() {
    for (m, k, n) in [(240, 6480, 4096), (240, 240, 4096), (64, 1728, 16384), (1024, 256, 4096)] {
        let (a, b) = (matrix(m * k, 1), matrix(k * n, 2));
        let mut c = vec![0.0f32; m * n];
        for kernel in kernels() {
            let t = std::time::Instant::now();
            let reps = 5;
            for _ in 0..reps {
                sgemm_with(kernel, m, k, n, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!("{m}×{k}×{n} {kernel:?}: {:.1} ms, {:.1} GFLOP/s", s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
        }
    }
}

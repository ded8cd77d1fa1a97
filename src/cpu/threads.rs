//! Work split over the machine's cores for the CPU path: scoped threads natively, inline in the
//! browser (wasm32 has no threads without cross-origin isolation, so the page stays
//! single-threaded and correct everywhere).

use std::sync::OnceLock;

/// How many threads the CPU path uses: `VIDEOGPT_THREADS` when set (benchmarks pin it), else
/// the cores the OS gives this process.
pub fn thread_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        if cfg!(target_arch = "wasm32") {
            return 1;
        }
        let from_env = std::env::var("VIDEOGPT_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0);
        from_env.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).min(64)
    })
}

/// How long the loops of a workload run, which decides the pool they go to (measured: see
/// [`pool`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Milliseconds each, back to back: convolutions, GEMMs.
    Long,
    /// Tens of microseconds each, thousands a second: a decoding step's products.
    Short,
}

/// Runs `task(i)` for `i` in `0..tasks`, the tasks dealt out in contiguous runs, one run per
/// thread; the calling thread takes the first run. Below `min_work` units of work in all
/// (`work` is the caller's estimate, e.g. multiply-adds) it runs inline, because handing work to
/// another thread costs microseconds.
pub fn parallel_for(tasks: usize, work: usize, min_work: usize, task: impl Fn(usize) + Sync) {
    parallel_for_paced(Pace::Long, tasks, work, min_work, task)
}

pub(crate) fn parallel_for_paced(pace: Pace, tasks: usize, work: usize, min_work: usize, task: impl Fn(usize) + Sync) {
    let threads = thread_count().min(tasks);
    if threads <= 1 || work < min_work || cfg!(target_arch = "wasm32") {
        (0..tasks).for_each(task);
        return;
    }
    run_split(pace, tasks, threads, &task);
}

#[cfg(not(target_arch = "wasm32"))]
fn run_split(pace: Pace, tasks: usize, threads: usize, task: &(impl Fn(usize) + Sync)) {
    let per = tasks.div_ceil(threads);
    let range = move |t: usize| t * per..((t + 1) * per).min(tasks);
    // the calling thread runs the first share: no wait for a worker to wake for work it can do
    pool(pace).in_place_scope(|s| {
        for t in 1..threads {
            s.spawn(move |_| range(t).for_each(task));
        }
        range(0).for_each(task);
    });
}

#[cfg(target_arch = "wasm32")]
fn run_split(_pace: Pace, tasks: usize, _threads: usize, task: &(impl Fn(usize) + Sync)) {
    (0..tasks).for_each(task);
}

/// The process's worker threads, which stay up between loops (starting threads each time would
/// cost more than some of the loops themselves). Two pools, measured on 2 cores: long loops run
/// fastest beside [`thread_count`] − 1 workers (an extra idle worker spinning after each loop
/// takes cycles from the two that compute: 266 against 279 ms for the VideoGPT-width clip);
/// short loops run fastest with one worker more, which is often still awake when the next loop
/// comes (212 against 159 tokens/s for the 576-wide prior). An unused pool's threads sleep.
#[cfg(not(target_arch = "wasm32"))]
fn pool(pace: Pace) -> &'static rayon::ThreadPool {
    static LONG: OnceLock<rayon::ThreadPool> = OnceLock::new();
    static SHORT: OnceLock<rayon::ThreadPool> = OnceLock::new();
    let (cell, size, name) = match pace {
        Pace::Long => (&LONG, thread_count() - 1, "videogpt-cpu"),
        Pace::Short => (&SHORT, thread_count(), "videogpt-step"),
    };
    cell.get_or_init(|| {
        rayon::ThreadPoolBuilder::new().num_threads(size.max(1)).thread_name(move |i| format!("{name}-{i}")).build().expect("could not start the CPU threads")
    })
}

/// A raw pointer the tasks of one [`parallel_for`] share to write disjoint parts of one output.
pub(crate) struct SharedMut<T = f32>(pub *mut T);

// derived Clone/Copy would require `T: Copy`; the pointer is always copyable
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not its field).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: only used by tasks that write disjoint elements, all joined before the borrow ends.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

/// Splits `out` into one nearly equal run of whole `unit`-sized rows per thread and runs
/// `task(first_row, rows)` on each in parallel.
pub fn parallel_rows(out: &mut [f32], unit: usize, work_per_row: usize, min_work: usize, task: impl Fn(usize, &mut [f32]) + Sync) {
    parallel_rows_paced(Pace::Long, out, unit, work_per_row, min_work, task)
}

/// [`parallel_rows`] for loops of the given [`Pace`], over any element type.
pub(crate) fn parallel_rows_paced<T: Send>(
    pace: Pace,
    out: &mut [T],
    unit: usize,
    work_per_row: usize,
    min_work: usize,
    task: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len() / unit.max(1);
    let threads = thread_count().min(rows.max(1));
    let per = rows.div_ceil(threads.max(1)).max(1);
    let ptr = SharedMut(out.as_mut_ptr());
    parallel_for_paced(pace, rows.div_ceil(per), rows * work_per_row, min_work, |i| {
        let (r0, r1) = (i * per, ((i + 1) * per).min(rows));
        // SAFETY: the runs [r0, r1) are disjoint and inside `out`
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r0 * unit), (r1 - r0) * unit) };
        task(r0, part);
    });
}

/// `task(i, &mut out[i])` for every element, the elements split over the cores (`work_per_item`
/// is the caller's estimate per element, as in [`parallel_for`]).
pub fn parallel_for_each<T: Send>(out: &mut [T], work_per_item: usize, task: impl Fn(usize, &mut T) + Sync) {
    parallel_rows_paced(Pace::Long, out, 1, work_per_item, 1 << 20, |i0, part| {
        part.iter_mut().enumerate().for_each(|(i, v)| task(i0 + i, v));
    });
}

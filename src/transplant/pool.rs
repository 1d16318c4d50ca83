//! The one worker pool of a transplant: staging copies from an old pack and the post-swap
//! verification both hand a list of independent jobs (mostly waiting on the disk) to a few
//! scoped threads. Results come back in the order of the items; the first error stops the
//! workers from taking new items and is returned.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Result;

/// At most this many threads: the jobs are disk-bound, more only add seeks.
const MAX_THREADS: usize = 4;

/// The number of workers: the machine's parallelism, at most 4 (the jobs are disk-bound).
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
}

/// Runs `job` on every item on `threads` scoped threads. Each thread starts with its own state
/// from `init` (a buffer, say) and hands it to each of its jobs.
///
/// # Errors
/// An error of a job (the others stop taking new items; their results are discarded).
pub fn parallel_each<T, S, R>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync,
    job: impl Fn(&mut S, &T) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || -> Result<Vec<(usize, R)>> {
        let mut state = init();
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            match job(&mut state, item) {
                Ok(r) => done.push((i, r)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    let n = threads.clamp(1, items.len().max(1));
    let per_thread: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for r in per_thread {
        all.extend(r?);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn results_in_item_order_and_errors_stop_the_pool() {
        let items: Vec<u32> = (0..100).collect();
        let got = parallel_each(
            &items,
            3,
            || 0u32,
            |n, x| {
                *n += 1;
                Ok(x * 2)
            },
        )
        .unwrap();
        assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let err = parallel_each(
            &items,
            2,
            || (),
            |_, x| {
                if *x == 7 {
                    Err(Error::Interrupted)
                } else {
                    Ok(*x)
                }
            },
        );
        assert!(matches!(err, Err(Error::Interrupted)));
        assert!(parallel_each(&[] as &[u32], 2, || (), |_, x| Ok(*x))
            .unwrap()
            .is_empty());
    }
}

//! Work spread over the machine's cores: a map that keeps its input's
//! order, so what runs in parallel gives the same output as a loop, and
//! freeing large structures on another core.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of every item, on up to as many threads as the machine has cores,
/// each result in its item's place. An item whose worker panicked gets
/// `None` (the caller can do it again on its own thread).
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if threads <= 1 {
        return items.iter().map(|i| Some(f(i))).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    let mut results: Vec<Option<R>> = Vec::new();
    results.resize_with(items.len(), || None);
    for (i, r) in done.into_iter().flatten() {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    }
    results
}

/// Frees `value` on another thread, so the caller goes on while a large
/// structure is taken apart; where no thread can be started, frees it
/// here (the closure that holds it is dropped).
pub fn drop_elsewhere<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out: Vec<u32> = super::map(&items, |i| i * 2).into_iter().flatten().collect();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u32], |i| *i).is_empty());
    }

    #[test]
    fn drops_elsewhere() {
        let held = std::sync::Arc::new(());
        super::drop_elsewhere(std::sync::Arc::clone(&held));
        for _ in 0..500 {
            if std::sync::Arc::strong_count(&held) == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the value handed over was never dropped");
    }
}

//! Thread per core: each worker thread runs its own single-threaded tokio runtime with a
//! `LocalSet`, so a connection lives on one thread for its whole life, its state needs no locks
//! and its tasks need not be `Send`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The default worker count: one per core this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts one named thread per item of `per_thread` (listeners, say), each running
/// `work(index, item)` to completion on its own current-thread runtime.
pub fn spawn<T, F, Fut>(name: &str, per_thread: Vec<T>, work: F) -> io::Result<Vec<JoinHandle<()>>>
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let work = Arc::new(work);
    let mut handles = Vec::with_capacity(per_thread.len());
    for (index, item) in per_thread.into_iter().enumerate() {
        let work = Arc::clone(&work);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, work(index, item));
                // Dropping the LocalSet here drops the tasks still on it: their sockets close.
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::sync::Mutex;

    #[test]
    fn each_item_runs_on_its_own_thread_and_may_use_local_tasks() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let handles = spawn("test", vec![10, 20, 30], move |index, item: u32| {
            let record = Arc::clone(&record);
            async move {
                // Rc is !Send: this works only because tasks stay on this thread.
                let local = Rc::new(item);
                let task = tokio::task::spawn_local(async move { *local + 1 });
                let name = std::thread::current().name().unwrap().to_string();
                let result = task.await.unwrap();
                record.lock().unwrap().push((index, result, name));
            }
        })
        .unwrap();
        for handle in handles {
            handle.join().unwrap();
        }
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (0, 11, "test-0".to_string()),
                (1, 21, "test-1".to_string()),
                (2, 31, "test-2".to_string())
            ]
        );
    }

    #[test]
    fn there_is_at_least_one_thread() {
        assert!(default_threads() >= 1);
    }
}

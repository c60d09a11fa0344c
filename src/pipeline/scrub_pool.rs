//! A fixed pool of threads for scrubbing large envelopes off the async threads.
//!
//! Why not tokio's blocking pool: it grows to hundreds of threads under load, and with
//! mimalloc every thread that ran a large scrub keeps a heap the size of that scrub, while
//! memory it allocated and another thread freed waits on that thread's list until it
//! allocates again. Measured with 200 connections posting 1 MB events, the process peaked at
//! 200 MB with the blocking pool; a few threads that stay busy under load reuse their own
//! memory instead (BENCHMARKS.md). More threads than cores would not scrub faster anyway.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

/// The pool; dropping it lets its threads finish the queued jobs and exit.
#[derive(Debug)]
pub(super) struct ScrubPool {
    sender: Mutex<mpsc::Sender<Job>>,
}

impl ScrubPool {
    pub(super) fn new(threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("scrubgate-scrub-{n}"))
                .spawn(move || loop {
                    let job = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    match job {
                        // A panicking job loses its answer (the caller sees `None`), not
                        // the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(error = %error, "cannot start a scrub thread");
            }
        }
        Self {
            sender: Mutex::new(sender),
        }
    }

    /// Runs `work` on a pool thread; `None` if it panicked or the pool is gone.
    pub(super) async fn run<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_survives_a_panicking_job() {
        let pool = ScrubPool::new(1);
        assert_eq!(pool.run(|| 6 * 7).await, Some(42));
        let panicked: Option<()> = pool.run(|| panic!("scrub bug")).await;
        assert_eq!(panicked, None);
        assert_eq!(pool.run(|| "still here").await, Some("still here"));
    }
}

use super::*;
use std::sync::Mutex;

/// A fake model that records each batch and can be held shut until the test opens it.
struct Gate {
    entered: Mutex<usize>,
    open: Mutex<bool>,
    cv: std::sync::Condvar,
    batches: Mutex<Vec<Vec<u32>>>,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Gate {
            entered: Mutex::new(0),
            open: Mutex::new(false),
            cv: std::sync::Condvar::new(),
            batches: Mutex::new(Vec::new()),
        })
    }
    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
    /// Waits until the scheduler is inside its first (held) batch, so that everything
    /// submitted afterwards queues behind it.
    fn wait_entered(&self) {
        let start = Instant::now();
        while *self.entered.lock().unwrap_or_else(|e| e.into_inner()) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the scheduler never ran a batch"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    fn batches(&self) -> Vec<Vec<u32>> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn batcher(gate: &Arc<Gate>, config: BatchConfig) -> Batcher<u32, u32> {
    let gate = gate.clone();
    let run: RunBatch<u32, u32> = Box::new(move |items: &[u32]| {
        *gate.entered.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let mut open = gate.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = gate.cv.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        gate.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(items.to_vec());
        Ok(items.iter().map(|x| x * 10).collect())
    });
    Batcher::start("fake", config, |x| *x as usize, run).unwrap_or_else(|e| panic!("{e}"))
}

fn config() -> BatchConfig {
    BatchConfig {
        max_items: 64,
        max_cost: 10_000,
        max_delay: Duration::from_millis(5),
        queue_capacity: 64,
        bulk_every: 2,
    }
}

/// Polls `future` on this thread until it is ready, parking between polls: the least
/// executor there is, enough to show a `Pending` wakes whoever awaits it.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn an_awaited_request_is_woken_when_its_batch_has_run() -> Result<(), ModelError> {
    let gate = Gate::new();
    let b = batcher(&gate, config());
    let pending = b.submit(vec![4, 5], Lane::Bulk)?;
    // Poll once while the batch is held: not ready, and nothing blocks.
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut pending = Box::pin(pending);
    assert!(pending.as_mut().poll(&mut cx).is_pending());
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            gate.open();
        })
    };
    assert_eq!(block_on(pending)?, vec![40, 50]);
    let _ = opener.join();
    // A submission the queue refuses is an outcome at once, awaited or not.
    let refused: Submitted<u32> = Submitted::from_queue(Err(ModelError::Overloaded {
        model: "fake".into(),
        capacity: 0,
    }));
    assert!(matches!(
        block_on(refused.outcome()),
        Err(ModelError::Overloaded { .. })
    ));
    Ok(())
}

#[test]
fn concurrent_requests_merge_and_results_route_back_in_order() -> Result<(), ModelError> {
    let gate = Gate::new();
    let b = batcher(&gate, config());
    let first = b.submit(vec![1], Lane::Bulk)?;
    gate.wait_entered();
    let a = b.submit(vec![9, 3, 7], Lane::Bulk)?;
    let c = b.submit(vec![2, 8], Lane::Bulk)?;
    gate.open();
    assert_eq!(first.wait()?, vec![10]);
    assert_eq!(a.wait()?, vec![90, 30, 70]);
    assert_eq!(c.wait()?, vec![20, 80]);
    let batches = gate.batches();
    assert_eq!(
        batches[1],
        vec![2, 3, 7, 8, 9],
        "merged and sorted by cost: {batches:?}"
    );
    assert_eq!(b.depth(), 0);
    Ok(())
}

#[test]
fn interactive_goes_first_and_bulk_is_not_starved() -> Result<(), ModelError> {
    let gate = Gate::new();
    let b = batcher(
        &gate,
        BatchConfig {
            max_items: 1,
            ..config()
        },
    );
    let blocker = b.submit(vec![0], Lane::Bulk)?;
    gate.wait_entered();
    let bulk = b.submit(vec![100], Lane::Bulk)?;
    let interactive: Vec<_> = (1..=4)
        .map(|i| b.submit(vec![i], Lane::Interactive))
        .collect::<Result<_, _>>()?;
    gate.open();
    blocker.wait()?;
    bulk.wait()?;
    for p in interactive {
        p.wait()?;
    }
    let order: Vec<u32> = gate.batches().into_iter().flatten().collect();
    // Two interactive batches, then the bulk one gets its turn (bulk_every = 2).
    assert_eq!(order, vec![0, 1, 2, 100, 3, 4]);
    Ok(())
}

#[test]
fn a_full_queue_is_overloaded_not_unbounded() -> Result<(), ModelError> {
    let gate = Gate::new();
    let b = batcher(
        &gate,
        BatchConfig {
            queue_capacity: 2,
            ..config()
        },
    );
    let one = b.submit(vec![1], Lane::Bulk)?;
    gate.wait_entered();
    let two = b.submit(vec![2], Lane::Bulk)?;
    match b.submit(vec![3], Lane::Interactive) {
        Err(ModelError::Overloaded { capacity: 2, .. }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
    gate.open();
    one.wait()?;
    two.wait()?;
    assert_eq!(
        b.call(vec![4], Lane::Bulk)?,
        vec![40],
        "capacity comes back once the queue drains"
    );
    Ok(())
}

#[test]
fn dropped_requests_are_never_computed() -> Result<(), ModelError> {
    let gate = Gate::new();
    let b = batcher(&gate, config());
    let first = b.submit(vec![1], Lane::Bulk)?;
    gate.wait_entered();
    drop(b.submit(vec![666], Lane::Bulk)?);
    let kept = b.submit(vec![2], Lane::Bulk)?;
    gate.open();
    first.wait()?;
    assert_eq!(kept.wait()?, vec![20]);
    assert!(gate.batches().iter().flatten().all(|x| *x != 666));
    assert_eq!(b.depth(), 0);
    Ok(())
}

#[test]
fn model_errors_reach_every_caller_of_the_batch() {
    let run: RunBatch<u32, u32> = Box::new(|_| Err(ModelError::Device("boom".into())));
    let b = Batcher::start("broken", config(), |_| 1, run).unwrap_or_else(|e| panic!("{e}"));
    let msg = b
        .call(vec![1], Lane::Bulk)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("broken") && msg.contains("boom"), "{msg}");
}

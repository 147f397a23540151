//! Merging concurrent model requests into batches: one scheduler thread per loaded model.
//!
//! Plugins call models one title at a time, from many threads; a model is fastest on batches. A
//! [`Batcher`] owns a queue on its own thread (TEI's queue design): callers submit requests with a
//! lane and get a [`Pending`] handle; the thread waits up to `max_delay` for company, then takes
//! whole requests — interactive lane first, with one bulk batch forced in after `bulk_every`
//! interactive batches so ingestion is never starved — up to `max_items` items and `max_cost`
//! (tokens, pixels: whatever the caller's cost function counts). Within a batch, items are sorted
//! by cost so that padding stays small, and results are routed back in each request's order.
//!
//! Admission comes first: when `queue_capacity` requests are waiting, `submit` fails at once with
//! [`ModelError::Overloaded`] instead of growing the queue. A caller that drops its `Pending`
//! before the batch is formed has its request dropped, never computed.
//!
//! A `Pending` is waited for by blocking ([`Pending::wait`]) or by awaiting it: an async caller
//! (a plugin call waiting for its batch) holds no thread while it waits.

use crate::ModelError;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Which queue a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Latency-sensitive (a ranker's query): served first.
    Interactive,
    /// Throughput work (catalog ingestion).
    Bulk,
}

/// Batching limits.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Most items in one batch.
    pub max_items: usize,
    /// Most total cost in one batch (a single larger request still runs, alone).
    pub max_cost: usize,
    /// How long the first request of a batch waits for others.
    pub max_delay: Duration,
    /// Most requests waiting; more are refused as overloaded.
    pub queue_capacity: usize,
    /// After this many interactive batches in a row, a waiting bulk request goes next.
    pub bulk_every: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: 32,
            max_cost: 32 * 128,
            max_delay: Duration::from_millis(2),
            queue_capacity: 1024,
            bulk_every: 4,
        }
    }
}

/// Where a request's outcome goes: filled once by the scheduler, read by the caller by blocking
/// or as a future.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

struct SlotState<T> {
    value: Option<T>,
    /// The scheduler's side is done (filled, or dropped unfilled).
    closed: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                value: None,
                closed: false,
                waker: None,
            }),
            ready: Condvar::new(),
        })
    }

    /// Fills (or, with `None`, closes) the slot once and wakes its waiter.
    fn close(&self, value: Option<T>) {
        // Only this module writes the state, and never panics holding the lock.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return;
        }
        state.value = value;
        state.closed = true;
        let waker = state.waker.take();
        drop(state);
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The scheduler's end of a [`Slot`]; dropped unfilled, it tells the caller the batch failed.
struct Reply<O>(Arc<Slot<Result<Vec<O>, String>>>);

impl<O> Reply<O> {
    fn send(self, outcome: Result<Vec<O>, String>) {
        self.0.close(Some(outcome));
    }
}

impl<O> Drop for Reply<O> {
    fn drop(&mut self) {
        self.0.close(None);
    }
}

struct Request<I, O> {
    items: Vec<I>,
    lane: Lane,
    reply: Reply<O>,
    alive: Weak<()>,
}

/// A submitted request: wait for it (blocking, or by awaiting it), or drop it to cancel.
pub struct Pending<O> {
    model: String,
    slot: Arc<Slot<Result<Vec<O>, String>>>,
    _alive: Arc<()>,
}

impl<O> std::fmt::Debug for Pending<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl<O> Pending<O> {
    /// Blocks until the request's batch has run.
    pub fn wait(self) -> Result<Vec<O>, ModelError> {
        let mut state = self.slot.state.lock().unwrap_or_else(|p| p.into_inner());
        while !state.closed {
            state = self
                .slot
                .ready
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        let value = state.value.take();
        drop(state);
        self.outcome(value)
    }

    fn outcome(&self, value: Option<Result<Vec<O>, String>>) -> Result<Vec<O>, ModelError> {
        match value {
            Some(Ok(out)) => Ok(out),
            Some(Err(reason)) => Err(ModelError::Batch {
                model: self.model.clone(),
                reason,
            }),
            None => Err(ModelError::Batch {
                model: self.model.clone(),
                reason: "the batching thread stopped".into(),
            }),
        }
    }
}

impl<O> Future for Pending<O> {
    type Output = Result<Vec<O>, ModelError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            let value = state.value.take();
            drop(state);
            return Poll::Ready(self.outcome(value));
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A model call started without waiting: computed already (a model without a batcher runs on
/// the caller), or queued for a batch. Await [`Submitted::outcome`], or [`Submitted::wait`].
#[derive(Debug)]
pub enum Submitted<O> {
    /// The outcome, computed on the caller's thread.
    Ready(Result<Vec<O>, ModelError>),
    /// Waiting for its batch.
    Queued(Pending<O>),
}

impl<O> Submitted<O> {
    /// A submission's outcome: queued, or refused at once (overloaded).
    pub fn from_queue(pending: Result<Pending<O>, ModelError>) -> Self {
        match pending {
            Ok(pending) => Submitted::Queued(pending),
            Err(e) => Submitted::Ready(Err(e)),
        }
    }

    /// Blocks until the outcome is there.
    pub fn wait(self) -> Result<Vec<O>, ModelError> {
        match self {
            Submitted::Ready(outcome) => outcome,
            Submitted::Queued(pending) => pending.wait(),
        }
    }

    /// Waits for the outcome without holding a thread.
    pub async fn outcome(self) -> Result<Vec<O>, ModelError> {
        match self {
            Submitted::Ready(outcome) => outcome,
            Submitted::Queued(pending) => pending.await,
        }
    }
}

/// The model side of a batcher: runs one batch (items in any order), one output per item.
pub type RunBatch<I, O> = Box<dyn Fn(&[I]) -> Result<Vec<O>, ModelError> + Send>;

/// A queue plus its scheduler thread for one model.
pub struct Batcher<I, O> {
    model: String,
    tx: SyncSender<Request<I, O>>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("model", &self.model)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the scheduler thread for `model`. `cost` prices one item; `run` computes a batch.
    pub fn start(
        model: &str,
        config: BatchConfig,
        cost: fn(&I) -> usize,
        run: RunBatch<I, O>,
    ) -> Result<Self, ModelError> {
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let waiting = Arc::new(AtomicUsize::new(0));
        let capacity = config.queue_capacity;
        let scheduler = Scheduler {
            config,
            cost,
            run,
            rx,
            waiting: waiting.clone(),
            interactive: VecDeque::new(),
            bulk: VecDeque::new(),
            streak: 0,
        };
        std::thread::Builder::new()
            .name(format!("batch-{model}"))
            .spawn(move || scheduler.run())
            .map_err(|e| ModelError::Batch {
                model: model.to_string(),
                reason: format!("cannot start the batching thread: {e}"),
            })?;
        Ok(Batcher {
            model: model.to_string(),
            tx,
            waiting,
            capacity,
        })
    }

    /// Queues `items` in `lane`; fails at once when the queue is full.
    pub fn submit(&self, items: Vec<I>, lane: Lane) -> Result<Pending<O>, ModelError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ModelError::Overloaded {
                model: self.model.clone(),
                capacity: self.capacity,
            });
        }
        let slot = Slot::new();
        let alive = Arc::new(());
        let request = Request {
            items,
            lane,
            reply: Reply(slot.clone()),
            alive: Arc::downgrade(&alive),
        };
        if self.tx.send(request).is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ModelError::Batch {
                model: self.model.clone(),
                reason: "the batching thread stopped".into(),
            });
        }
        Ok(Pending {
            model: self.model.clone(),
            slot,
            _alive: alive,
        })
    }

    /// Submits and waits.
    pub fn call(&self, items: Vec<I>, lane: Lane) -> Result<Vec<O>, ModelError> {
        self.submit(items, lane)?.wait()
    }

    /// Requests waiting or being batched.
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

struct Scheduler<I, O> {
    config: BatchConfig,
    cost: fn(&I) -> usize,
    run: RunBatch<I, O>,
    rx: Receiver<Request<I, O>>,
    waiting: Arc<AtomicUsize>,
    interactive: VecDeque<Request<I, O>>,
    bulk: VecDeque<Request<I, O>>,
    streak: usize,
}

impl<I, O> Scheduler<I, O> {
    fn push(&mut self, request: Request<I, O>) {
        match request.lane {
            Lane::Interactive => self.interactive.push_back(request),
            Lane::Bulk => self.bulk.push_back(request),
        }
    }

    fn run(mut self) {
        loop {
            if self.interactive.is_empty() && self.bulk.is_empty() {
                match self.rx.recv() {
                    Ok(request) => self.push(request),
                    Err(_) => return, // every Batcher handle is gone
                }
            }
            // Everything already sent joins the lanes (the channel is bounded by the queue
            // capacity), so lane priority sees every waiting request; then concurrent callers get
            // up to max_delay to fill the batch.
            while let Ok(request) = self.rx.try_recv() {
                self.push(request);
            }
            let deadline = Instant::now() + self.config.max_delay;
            while self.interactive.len() + self.bulk.len() < self.config.max_items {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(request) => self.push(request),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let batch = self.take_batch();
            self.execute(batch);
        }
    }

    fn take_batch(&mut self) -> Vec<Request<I, O>> {
        let bulk_turn = !self.bulk.is_empty()
            && (self.interactive.is_empty() || self.streak >= self.config.bulk_every);
        self.streak = if bulk_turn { 0 } else { self.streak + 1 };
        let queue = if bulk_turn {
            &mut self.bulk
        } else {
            &mut self.interactive
        };
        let (mut items, mut cost, mut batch) = (0usize, 0usize, Vec::new());
        while let Some(request) = queue.front() {
            if request.alive.strong_count() == 0 {
                // The caller went away: drop it unseen.
                queue.pop_front();
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let request_cost: usize = request.items.iter().map(self.cost).sum();
            let fits = items + request.items.len() <= self.config.max_items
                && cost + request_cost <= self.config.max_cost;
            if !batch.is_empty() && !fits {
                break;
            }
            items += request.items.len();
            cost += request_cost;
            if let Some(request) = queue.pop_front() {
                batch.push(request);
            }
        }
        batch
    }

    fn execute(&mut self, batch: Vec<Request<I, O>>) {
        if batch.is_empty() {
            return;
        }
        // Flatten, remembering each item's request and position, then sort by cost.
        let mut order: Vec<(usize, usize)> = Vec::new();
        let mut requests = Vec::with_capacity(batch.len());
        let mut flat: Vec<I> = Vec::new();
        for (r, request) in batch.into_iter().enumerate() {
            let Request { items, reply, .. } = request;
            for (i, item) in items.into_iter().enumerate() {
                order.push((r, i));
                flat.push(item);
            }
            requests.push(reply);
        }
        let mut index: Vec<usize> = (0..flat.len()).collect();
        index.sort_by_key(|&k| (self.cost)(&flat[k]));
        let mut sorted: Vec<Option<I>> = flat.into_iter().map(Some).collect();
        let inputs: Vec<I> = index.iter().filter_map(|&k| sorted[k].take()).collect();
        let outcome = (self.run)(&inputs);
        match outcome {
            Ok(outputs) if outputs.len() == inputs.len() => {
                let mut slots: Vec<Vec<Option<O>>> = requests.iter().map(|_| Vec::new()).collect();
                for (r, i) in &order {
                    if slots[*r].len() <= *i {
                        slots[*r].resize_with(i + 1, || None);
                    }
                }
                for (output, &k) in outputs.into_iter().zip(&index) {
                    let (r, i) = order[k];
                    slots[r][i] = Some(output);
                }
                for (reply, slot) in requests.into_iter().zip(slots) {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    reply.send(Ok(slot.into_iter().flatten().collect()));
                }
            }
            other => {
                let reason = match other {
                    Err(e) => e.to_string(),
                    Ok(outputs) => format!(
                        "the model returned {} outputs for {} inputs",
                        outputs.len(),
                        inputs.len()
                    ),
                };
                for reply in requests {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}

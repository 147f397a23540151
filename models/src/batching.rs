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
mod tests;

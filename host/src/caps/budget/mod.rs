//! The `budget` capability (contract 1.1): how much of the current call's time is left, so a
//! plugin can stop long work in time instead of being stopped with nothing.

use crate::runtime::bindings::v1::budget;
use std::time::{Duration, Instant};
use wasmtime::component::{HasData, Linker};

/// Per-call state: when the call's deadline passes.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCtx {
    /// The call's start plus its deadline.
    pub deadline_at: Instant,
}

impl BudgetCtx {
    /// A call that started at `started` with `deadline` to run.
    pub fn new(started: Instant, deadline: Duration) -> Self {
        BudgetCtx {
            deadline_at: started + deadline,
        }
    }
}

impl budget::Host for BudgetCtx {
    fn time_left_ms(&mut self) -> u64 {
        let left = self.deadline_at.saturating_duration_since(Instant::now());
        u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
    }
}

struct BudgetData;

impl HasData for BudgetData {
    type Data<'a> = &'a mut BudgetCtx;
}

/// Links the `budget` interface, with `get` picking the [`BudgetCtx`] out of the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut BudgetCtx,
) -> wasmtime::Result<()> {
    budget::add_to_linker::<T, BudgetData>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::v1::budget::Host;

    #[test]
    fn counts_down_to_zero_and_stays_there() {
        let now = Instant::now();
        let mut ctx = BudgetCtx::new(now, Duration::from_secs(2));
        let left = ctx.time_left_ms();
        assert!((1_900..=2_000).contains(&left), "{left}");
        let mut past = BudgetCtx::new(now, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(past.time_left_ms(), 0);
    }
}

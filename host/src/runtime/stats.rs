//! Per-plugin call statistics: counters the host keeps for every call (lock-free), so that
//! operators see where time goes — instantiation (the host's share), the guest's own work, and
//! the model calls it waits on.

use crate::histogram::{Histogram, label};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Running totals for one plugin, shared by all its calls.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    failures: AtomicU64,
    instantiate_ns: AtomicU64,
    guest_ns: AtomicU64,
    model_calls: AtomicU64,
    model_ns: AtomicU64,
    slowest_ns: AtomicU64,
    fuel: AtomicU64,
    /// Whole calls, instantiation included.
    call: Histogram,
    instantiate: Histogram,
    /// Each call's time in model calls (calls without any are not observed).
    model: Histogram,
}

/// One call's timing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallTiming {
    /// Creating the store and instantiating the component.
    pub instantiate: Duration,
    /// The call itself, less the time in model calls.
    pub guest: Duration,
    /// Model calls made.
    pub model_calls: u32,
    /// Time in model calls.
    pub model: Duration,
    /// Fuel burned (instructions, roughly), instantiation included.
    pub fuel: u64,
}

impl CallTiming {
    /// The whole call.
    pub fn total(&self) -> Duration {
        self.instantiate + self.guest + self.model
    }
}

/// A reading of [`PluginStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Calls made.
    pub calls: u64,
    /// Calls stopped by a trap, the deadline or the memory cap (a plugin that returns its own
    /// error has not failed here: the pipeline reports those).
    pub failures: u64,
    /// Total time instantiating, in seconds.
    pub instantiate_s: f64,
    /// Total guest time (the call less its model calls), in seconds.
    pub guest_s: f64,
    /// Model calls made.
    pub model_calls: u64,
    /// Total time in model calls, in seconds.
    pub model_s: f64,
    /// The slowest call, in seconds.
    pub slowest_s: f64,
    /// Fuel burned by all calls.
    pub fuel: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PluginStats {
    /// Adds one call.
    pub fn record(&self, timing: &CallTiming, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.instantiate_ns
            .fetch_add(nanos(timing.instantiate), Ordering::Relaxed);
        self.guest_ns
            .fetch_add(nanos(timing.guest), Ordering::Relaxed);
        self.model_calls
            .fetch_add(u64::from(timing.model_calls), Ordering::Relaxed);
        self.model_ns
            .fetch_add(nanos(timing.model), Ordering::Relaxed);
        self.slowest_ns
            .fetch_max(nanos(timing.total()), Ordering::Relaxed);
        self.fuel.fetch_add(timing.fuel, Ordering::Relaxed);
        self.call.observe(timing.total());
        self.instantiate.observe(timing.instantiate);
        if timing.model_calls > 0 {
            self.model.observe(timing.model);
        }
    }

    /// The totals so far.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            instantiate_s: s(&self.instantiate_ns),
            guest_s: s(&self.guest_ns),
            model_calls: self.model_calls.load(Ordering::Relaxed),
            model_s: s(&self.model_ns),
            slowest_s: s(&self.slowest_ns),
            fuel: self.fuel.load(Ordering::Relaxed),
        }
    }
}

/// Appends the metrics of `plugins` (name, version, stats) in the Prometheus text format: one
/// family after another (the format wants a family's samples together), one sample per plugin
/// and version.
pub fn render_prometheus(out: &mut String, plugins: &[(&str, &str, &PluginStats)]) {
    let labelled: Vec<(String, &PluginStats, StatsSnapshot)> = plugins
        .iter()
        .map(|(name, version, stats)| {
            (
                format!("plugin=\"{}\",version=\"{}\"", label(name), label(version)),
                *stats,
                stats.snapshot(),
            )
        })
        .collect();
    type Counter = fn(&StatsSnapshot) -> f64;
    let counters: [(&str, &str, Counter); 6] = [
        ("tessera_plugin_calls_total", "Plugin calls made.", |s| {
            s.calls as f64
        }),
        (
            "tessera_plugin_failures_total",
            "Plugin calls stopped by a trap, the deadline, fuel or the memory cap.",
            |s| s.failures as f64,
        ),
        (
            "tessera_plugin_guest_seconds_total",
            "Time in the guest's own code (calls less their model calls).",
            |s| s.guest_s,
        ),
        (
            "tessera_plugin_model_calls_total",
            "Model calls the plugin made.",
            |s| s.model_calls as f64,
        ),
        (
            "tessera_plugin_model_seconds_total",
            "Time the plugin waited on model calls.",
            |s| s.model_s,
        ),
        (
            "tessera_plugin_fuel_total",
            "Fuel (roughly instructions) the plugin burned.",
            |s| s.fuel as f64,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, _, snapshot) in &labelled {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(snapshot));
        }
    }
    type Pick = fn(&PluginStats) -> &Histogram;
    let histograms: [(&str, &str, Pick); 3] = [
        (
            "tessera_plugin_call_seconds",
            "Plugin call latency, instantiation and model calls included.",
            |s| &s.call,
        ),
        (
            "tessera_plugin_instantiate_seconds",
            "Store creation and instantiation per call (the host's share).",
            |s| &s.instantiate,
        ),
        (
            "tessera_plugin_model_wait_seconds",
            "Time per call waiting on model calls.",
            |s| &s.model,
        ),
    ];
    for (name, help, pick) in histograms {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (labels, stats, _) in &labelled {
            pick(stats).render(out, name, labels);
        }
    }
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.instantiate_s + self.guest_s + self.model_s;
        let share = |x: f64| if total > 0.0 { 100.0 * x / total } else { 0.0 };
        write!(
            f,
            "{} calls ({} failed): instantiate {:.1} ms ({:.1}%), guest {:.1} ms ({:.1}%), \
             {} model calls {:.1} ms ({:.1}%), slowest call {:.1} ms, fuel {:.1} M per call",
            self.calls,
            self.failures,
            self.instantiate_s * 1e3,
            share(self.instantiate_s),
            self.guest_s * 1e3,
            share(self.guest_s),
            self.model_calls,
            self.model_s * 1e3,
            share(self.model_s),
            self.slowest_s * 1e3,
            if self.calls > 0 {
                self.fuel as f64 / self.calls as f64 / 1e6
            } else {
                0.0
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_calls_and_keeps_the_slowest() {
        let stats = PluginStats::default();
        let ms = Duration::from_millis;
        stats.record(
            &CallTiming {
                instantiate: ms(1),
                guest: ms(2),
                model_calls: 1,
                model: ms(7),
                fuel: 3_000_000,
            },
            false,
        );
        stats.record(
            &CallTiming {
                instantiate: ms(1),
                guest: ms(1),
                model_calls: 0,
                model: ms(0),
                fuel: 1_000_000,
            },
            true,
        );
        let s = stats.snapshot();
        assert_eq!((s.calls, s.failures, s.model_calls), (2, 1, 1));
        assert!((s.slowest_s - 0.010).abs() < 1e-9);
        assert!((s.instantiate_s - 0.002).abs() < 1e-9);
        assert!(s.to_string().contains("instantiate 2.0 ms (16.7%)"), "{s}");
        assert_eq!(s.fuel, 4_000_000);
        assert!(s.to_string().contains("fuel 2.0 M per call"), "{s}");
    }
}

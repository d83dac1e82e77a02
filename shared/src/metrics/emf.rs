//! The Lambda functions' metrics: CloudWatch Embedded Metric Format. Each
//! invocation's counts and timings are written to stdout as JSON lines when it
//! ends; CloudWatch Logs turns them into metrics (namespace `hookflow`, one
//! dimension per label), with no agent and no API call.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "hookflow";
/// Most values of one histogram kept per invocation (EMF takes at most 100
/// values per metric in a line); beyond, the rest is not kept.
const MAX_VALUES: usize = 100;

/// Values recorded for one histogram since the last flush.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        let mut values = self.0.lock().expect("samples lock");
        if values.len() < MAX_VALUES {
            values.push(value);
        }
    }
}

/// Counters and histograms since the last [`EmfRecorder::flush`].
#[derive(Clone, Default)]
pub struct EmfRecorder {
    counters: Arc<Mutex<BTreeMap<Key, Arc<AtomicU64>>>>,
    histograms: Arc<Mutex<BTreeMap<Key, Arc<Samples>>>>,
}

/// The recorder [`install`] made the process's, which [`flush_invocation`] writes out.
static INSTALLED: OnceLock<EmfRecorder> = OnceLock::new();

/// Makes an EMF recorder the process's (once; later calls do nothing).
pub fn install() {
    let recorder = EmfRecorder::default();
    if metrics::set_global_recorder(recorder.clone()).is_ok() {
        let _ = INSTALLED.set(recorder);
    }
}

/// Writes the metrics of the invocation that ends to stdout (the function's
/// log), if [`install`] was called.
pub fn flush_invocation() {
    if let Some(recorder) = INSTALLED.get() {
        let now = crate::domain::Timestamp::now().0;
        if let Err(err) = recorder.flush(&mut std::io::stdout().lock(), now) {
            tracing::warn!(error = %err, "metrics not written");
        }
    }
}

impl EmfRecorder {
    /// Writes what was recorded since the last flush, one JSON line per metric
    /// and label set, and starts over. Nothing is written when nothing happened.
    pub fn flush(&self, out: &mut impl Write, timestamp_ms: i64) -> std::io::Result<()> {
        let counters: Vec<(Key, u64)> = self
            .counters
            .lock()
            .expect("counters lock")
            .iter()
            .map(|(key, count)| (key.clone(), count.swap(0, Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect();
        for (key, count) in counters {
            writeln!(out, "{}", line(&key, "Count", json!(count), timestamp_ms))?;
        }
        let histograms: Vec<(Key, Vec<f64>)> = self
            .histograms
            .lock()
            .expect("histograms lock")
            .iter()
            .map(|(key, samples)| {
                let values = std::mem::take(&mut *samples.0.lock().expect("samples lock"));
                (key.clone(), values)
            })
            .filter(|(_, values)| !values.is_empty())
            .collect();
        for (key, values) in histograms {
            writeln!(
                out,
                "{}",
                line(&key, "Seconds", json!(values), timestamp_ms)
            )?;
        }
        Ok(())
    }
}

/// One EMF document: the metric's value under its name, its labels as
/// dimensions, and the `_aws` directive that says so.
fn line(key: &Key, unit: &str, value: Value, timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    let dimensions: Vec<&str> = key.labels().map(|label| label.key()).collect();
    for label in key.labels() {
        root.insert(label.key().to_owned(), json!(label.value()));
    }
    root.insert(key.name().to_owned(), value);
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": key.name(), "Unit": unit}],
            }],
        }),
    );
    Value::Object(root)
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().expect("counters lock");
        Counter::from_arc(counters.entry(key.clone()).or_default().clone())
    }

    /// hookflow records no gauges.
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().expect("histograms lock");
        Histogram::from_arc(histograms.entry(key.clone()).or_default().clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_invocation_is_written_as_emf_lines_once() {
        let recorder = EmfRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            crate::metrics::receive_answered(200, Duration::from_millis(3));
            crate::metrics::receive_answered(200, Duration::from_millis(5));
            crate::metrics::call_refused("signature_invalid");
        });
        let mut out = Vec::new();
        recorder.flush(&mut out, 1_764_000_000_000).unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let with = |name: &str| {
            lines
                .iter()
                .find(|l| l.get(name).is_some())
                .unwrap_or_else(|| panic!("no {name}: {lines:?}"))
        };
        let receives = with("hookflow_receives_total");
        assert_eq!(receives["hookflow_receives_total"], 2);
        assert_eq!(receives["status"], "200");
        assert_eq!(
            receives["_aws"],
            json!({"Timestamp": 1_764_000_000_000_i64, "CloudWatchMetrics": [{
                "Namespace": "hookflow", "Dimensions": [["status"]],
                "Metrics": [{"Name": "hookflow_receives_total", "Unit": "Count"}]}]})
        );
        assert_eq!(
            with("hookflow_receive_refusals_total")["code"],
            "signature_invalid"
        );
        let durations = with("hookflow_receive_duration_seconds");
        assert_eq!(
            durations["hookflow_receive_duration_seconds"],
            json!([0.003, 0.005])
        );
        assert_eq!(
            durations["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );

        // Flushed: the next invocation starts from nothing.
        let mut again = Vec::new();
        recorder.flush(&mut again, 1).unwrap();
        assert!(again.is_empty());
    }
}

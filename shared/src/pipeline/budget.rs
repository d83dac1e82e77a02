//! What one pipeline run may spend. A stored pipeline runs on data strangers
//! send, so every value a run produces is paid for from one allowance as it is
//! built: its size (all steps together), its nesting, and the run's time.
//!
//! Sizes are counted as roughly what a value takes in memory: each value and
//! each object key counts [`ITEM_BYTES`] plus its text. Copies count too (a
//! path read clones what it reads), so the allowance also bounds the work a
//! run does: expressions have no loops, and each step evaluates its
//! parameters once.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::limits::MAX_JSON_DEPTH;

/// Bytes one run's values may take, all steps together, by default.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Largest text one expression may produce.
pub const MAX_TEXT_BYTES: usize = 8 * 1024 * 1024;

/// What every value and every object key counts besides its text: the size of
/// a `serde_json::Value`, which is what an item of a list takes.
pub const ITEM_BYTES: usize = std::mem::size_of::<Value>();

/// How much a run may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// `HOOKFLOW_PIPELINE_BUDGET_BYTES`: bytes the run's values may take, all steps together.
    pub budget_bytes: usize,
    /// `HOOKFLOW_PIPELINE_TIMEOUT_MS`: longest the run may take.
    pub timeout: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            budget_bytes: DEFAULT_BUDGET_BYTES,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why a run has to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exhausted {
    /// A size or nesting limit; the text names it.
    Limit(String),
    /// The run's time is up.
    Timeout,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Limit(limit) => f.write_str(limit),
            Exhausted::Timeout => f.write_str("the run's time is up"),
        }
    }
}

/// Bytes charged between two looks at the clock: a few milliseconds of copying.
const CLOCK_EVERY_BYTES: usize = 256 * 1024;
/// Charges between two looks at the clock, for runs of many small values.
const CLOCK_EVERY_CHARGES: u32 = 1024;

/// The allowance of one run, spent as its values are built.
#[derive(Debug)]
pub struct Budget {
    limits: RunLimits,
    deadline: Instant,
    spent: Cell<usize>,
    unclocked_bytes: Cell<usize>,
    unclocked_charges: Cell<u32>,
}

impl Budget {
    /// A full allowance; the run's time starts now.
    pub fn start(limits: RunLimits) -> Budget {
        Budget {
            limits,
            deadline: Instant::now() + limits.timeout,
            spent: Cell::new(0),
            unclocked_bytes: Cell::new(0),
            unclocked_charges: Cell::new(0),
        }
    }

    /// When the run's time is up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Bytes still to spend.
    pub fn remaining(&self) -> usize {
        self.limits.budget_bytes - self.spent.get()
    }

    /// Pays for `bytes` about to be (or just) produced. Looks at the clock every
    /// so often, so that a long evaluation stops at the deadline too.
    pub fn charge(&self, bytes: usize) -> Result<(), Exhausted> {
        if bytes > self.remaining() {
            return Err(self.over_budget());
        }
        self.spent.set(self.spent.get() + bytes);
        let unclocked = self.unclocked_bytes.get() + bytes;
        let charges = self.unclocked_charges.get() + 1;
        if unclocked >= CLOCK_EVERY_BYTES || charges >= CLOCK_EVERY_CHARGES {
            self.unclocked_bytes.set(0);
            self.unclocked_charges.set(0);
            self.check_deadline()
        } else {
            self.unclocked_bytes.set(unclocked);
            self.unclocked_charges.set(charges);
            Ok(())
        }
    }

    /// Pays for a copy of `value`, measured before it is made.
    pub fn charge_value(&self, value: &Value) -> Result<(), Exhausted> {
        let size = footprint(value, self.remaining().saturating_add(1));
        self.charge(size)
    }

    /// Fails once the run's time is up.
    pub fn check_deadline(&self) -> Result<(), Exhausted> {
        if Instant::now() >= self.deadline {
            Err(Exhausted::Timeout)
        } else {
            Ok(())
        }
    }

    /// How the size limit reads when reached.
    pub fn over_budget(&self) -> Exhausted {
        Exhausted::Limit(format!(
            "the run's values would exceed {} bytes (HOOKFLOW_PIPELINE_BUDGET_BYTES)",
            self.limits.budget_bytes
        ))
    }

    /// `value` as JSON text, refused past [`MAX_TEXT_BYTES`] or the allowance,
    /// and paid for. Writing stops at the limit, so a value whose text would
    /// be huge never gets that far.
    pub fn json_text(&self, value: &Value) -> Result<String, Exhausted> {
        let remaining = self.remaining();
        let cap = MAX_TEXT_BYTES.min(remaining);
        let mut writer = CappedWriter {
            text: Vec::new(),
            cap,
        };
        if serde_json::to_writer(&mut writer, value).is_err() {
            return Err(if cap == MAX_TEXT_BYTES {
                text_too_large()
            } else {
                self.over_budget()
            });
        }
        self.charge(writer.text.len())?;
        // serde_json writes UTF-8 only.
        String::from_utf8(writer.text).map_err(|_| text_too_large())
    }
}

/// Why [`Budget::json_value`] made no value.
#[derive(Debug)]
pub enum JsonValueError {
    Invalid(serde_json::Error),
    Exhausted(Exhausted),
}

impl Budget {
    /// Parses JSON `text`, paying for each value as it is read and refusing
    /// nesting past [`MAX_JSON_DEPTH`], so that a short text describing a huge
    /// or deep value stops where the limit is reached.
    pub fn json_value(&self, text: &str) -> Result<Value, JsonValueError> {
        let stopped = Cell::new(None);
        let seed = Paid {
            budget: self,
            depth: 0,
            stopped: &stopped,
        };
        let mut reader = serde_json::Deserializer::from_str(text);
        let parsed = seed.deserialize(&mut reader).and_then(|value| {
            reader.end()?;
            Ok(value)
        });
        match (parsed, stopped.take()) {
            (_, Some(exhausted)) => Err(JsonValueError::Exhausted(exhausted)),
            (Ok(value), None) => Ok(value),
            (Err(err), None) => Err(JsonValueError::Invalid(err)),
        }
    }
}

/// Builds one JSON value (at `depth`) while paying for it.
#[derive(Clone, Copy)]
struct Paid<'a> {
    budget: &'a Budget,
    depth: usize,
    stopped: &'a Cell<Option<Exhausted>>,
}

impl Paid<'_> {
    fn pay<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.budget.charge(bytes).map_err(|e| self.stop(e))
    }

    fn stop<E: de::Error>(&self, exhausted: Exhausted) -> E {
        let message = exhausted.to_string();
        self.stopped.set(Some(exhausted));
        E::custom(message)
    }

    /// The seed for the items of a list or map opened here.
    fn inner<E: de::Error>(&self) -> Result<Paid<'_>, E> {
        let depth = self.depth + 1;
        if depth > MAX_JSON_DEPTH {
            return Err(self.stop(too_deep()));
        }
        self.pay(ITEM_BYTES)?;
        Ok(Paid {
            budget: self.budget,
            depth,
            stopped: self.stopped,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Paid<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Value, D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Paid<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.pay(ITEM_BYTES)?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        self.pay(ITEM_BYTES)?;
        Ok(Value::from(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        self.pay(ITEM_BYTES)?;
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        self.pay(ITEM_BYTES)?;
        Ok(Value::from(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        self.pay(ITEM_BYTES + text.len())?;
        Ok(Value::String(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        self.pay(ITEM_BYTES + text.len())?;
        Ok(Value::String(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.pay(ITEM_BYTES)?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut list = Vec::new();
        while let Some(item) = items.next_element_seed(inner)? {
            list.push(item);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut map = serde_json::Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            inner.pay(ITEM_BYTES + key.len())?;
            let value = entries.next_value_seed(inner)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// How the nesting limit reads when reached.
pub fn too_deep() -> Exhausted {
    Exhausted::Limit(format!(
        "the value would nest deeper than {MAX_JSON_DEPTH} levels"
    ))
}

/// How the text limit reads when reached.
pub fn text_too_large() -> Exhausted {
    Exhausted::Limit(format!("the text would exceed {MAX_TEXT_BYTES} bytes"))
}

/// Refuses text longer than [`MAX_TEXT_BYTES`] before it is built.
pub fn check_text_len(len: usize) -> Result<(), Exhausted> {
    if len > MAX_TEXT_BYTES {
        Err(text_too_large())
    } else {
        Ok(())
    }
}

/// A writer that refuses to grow past `cap` bytes.
struct CappedWriter {
    text: Vec<u8>,
    cap: usize,
}

impl io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.text.len() + buf.len() > self.cap {
            return Err(io::Error::other("the text limit is reached"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `value` as a run counts it: [`ITEM_BYTES`] per value and per
/// object key, plus their text. Walks without recursion, holding one iterator
/// per level, and stops counting once the size reaches `stop_at`.
pub fn footprint(value: &Value, stop_at: usize) -> usize {
    enum Level<'a> {
        List(std::slice::Iter<'a, Value>),
        Map(serde_json::map::Iter<'a>),
    }
    let mut size = 0;
    let mut levels: Vec<Level<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        if let Some(value) = next.take() {
            size += ITEM_BYTES;
            match value {
                Value::String(text) => size += text.len(),
                Value::Array(items) => levels.push(Level::List(items.iter())),
                Value::Object(map) => levels.push(Level::Map(map.iter())),
                _ => {}
            }
        }
        if size >= stop_at {
            return size;
        }
        let Some(level) = levels.last_mut() else {
            return size;
        };
        match level {
            Level::List(items) => next = items.next(),
            Level::Map(entries) => {
                next = entries.next().map(|(key, value)| {
                    size += ITEM_BYTES + key.len();
                    value
                })
            }
        }
        if next.is_none() {
            levels.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(budget_bytes: usize) -> RunLimits {
        RunLimits {
            budget_bytes,
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn footprint_counts_items_keys_and_text() {
        assert_eq!(footprint(&json!(1), usize::MAX), ITEM_BYTES);
        assert_eq!(footprint(&json!("abc"), usize::MAX), ITEM_BYTES + 3);
        assert_eq!(footprint(&json!([]), usize::MAX), ITEM_BYTES);
        assert_eq!(footprint(&json!([1, [2]]), usize::MAX), 4 * ITEM_BYTES);
        assert_eq!(
            footprint(&json!({"ab": {"c": "xyz"}}), usize::MAX),
            ITEM_BYTES + (ITEM_BYTES + 2) + ITEM_BYTES + (ITEM_BYTES + 1) + (ITEM_BYTES + 3)
        );
        let deep = (0..100_000).fold(json!(1), |inner, _| Value::Array(vec![inner]));
        assert_eq!(footprint(&deep, usize::MAX), 100_001 * ITEM_BYTES);
        assert_eq!(footprint(&deep, 10 * ITEM_BYTES), 10 * ITEM_BYTES);
        // Built without recursion; taken apart without it too.
        let mut deep = deep;
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn the_allowance_is_spent_up_to_its_last_byte() {
        let budget = Budget::start(limits(1000));
        budget.charge(600).unwrap();
        budget.charge(400).unwrap();
        assert_eq!(budget.remaining(), 0);
        let Err(Exhausted::Limit(message)) = budget.charge(1) else {
            panic!("one byte more is refused")
        };
        assert!(message.contains("exceed 1000 bytes"), "{message}");

        let value = json!({"k": "v"});
        let exact = footprint(&value, usize::MAX);
        assert!(Budget::start(limits(exact)).charge_value(&value).is_ok());
        assert!(
            Budget::start(limits(exact - 1))
                .charge_value(&value)
                .is_err()
        );
    }

    #[test]
    fn json_text_stops_writing_at_the_text_cap() {
        let budget = Budget::start(limits(usize::MAX / 2));
        let exact = json!("x".repeat(MAX_TEXT_BYTES - 2));
        assert_eq!(budget.json_text(&exact).unwrap().len(), MAX_TEXT_BYTES);
        let over = json!("x".repeat(MAX_TEXT_BYTES - 1));
        assert_eq!(budget.json_text(&over), Err(text_too_large()));
        // Below the text cap, the allowance is what stops it.
        let small = Budget::start(limits(100));
        assert_eq!(
            small.json_text(&json!("x".repeat(200))),
            Err(small.over_budget())
        );
    }

    #[test]
    fn a_passed_deadline_stops_a_long_run_of_charges() {
        let budget = Budget::start(RunLimits {
            budget_bytes: usize::MAX / 2,
            timeout: Duration::ZERO,
        });
        assert_eq!(budget.check_deadline(), Err(Exhausted::Timeout));
        let stopped = (0..CLOCK_EVERY_CHARGES).find_map(|_| budget.charge(1).err());
        assert_eq!(stopped, Some(Exhausted::Timeout));
    }
}

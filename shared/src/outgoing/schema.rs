//! A registration's JSON Schema: whether it is one (checked when the
//! registration is put) and whether a trigger's data matches it. The only file
//! of the outgoing rules that knows the `jsonschema` crate, which comes with
//! the `http-client` feature: the functions that never call out (result-poll,
//! webhook-receive) do not link it, and refuse a schema if one is ever put
//! through them.

use serde_json::Value;

use super::error::OutgoingError;

/// A compiled schema.
#[cfg(feature = "http-client")]
pub struct Validator(jsonschema::Validator);

/// A compiled schema, of which a build without `jsonschema` has none.
#[cfg(not(feature = "http-client"))]
pub enum Validator {}

/// The validator of a registration's `schema`; 400 `invalid_schema` if it is none.
#[cfg(feature = "http-client")]
pub fn compile(schema: &Value) -> Result<Validator, OutgoingError> {
    jsonschema::validator_for(schema)
        .map(Validator)
        .map_err(|e| {
            OutgoingError::invalid(
                "invalid_schema",
                format!("schema is not a valid JSON Schema: {e}"),
            )
        })
}

/// Without `jsonschema`, every schema is refused (400 `invalid_schema`).
#[cfg(not(feature = "http-client"))]
pub fn compile(_schema: &Value) -> Result<Validator, OutgoingError> {
    Err(OutgoingError::invalid(
        "invalid_schema",
        "this build cannot check JSON Schemas (feature http-client)",
    ))
}

/// Refuses `data` (`null` when the trigger gave none) with 400 `schema_violation`
/// naming where the first mismatch is.
#[cfg(feature = "http-client")]
pub fn check(validator: &Validator, data: &Value) -> Result<(), OutgoingError> {
    let Some(error) = validator.0.iter_errors(data).next() else {
        return Ok(());
    };
    let path = error.instance_path().to_string();
    let at = if path.is_empty() { "/".into() } else { path };
    Err(OutgoingError::invalid(
        "schema_violation",
        format!("data does not match the registered schema at {at}: {error}"),
    ))
}

/// No validator exists in this build, so nothing is ever checked.
#[cfg(not(feature = "http-client"))]
pub fn check(validator: &Validator, _data: &Value) -> Result<(), OutgoingError> {
    match *validator {}
}

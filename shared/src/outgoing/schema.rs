//! A registration's JSON Schema: whether it is one (checked when the
//! registration is put) and whether a trigger's data matches it. The only file
//! of the outgoing rules that knows the `jsonschema` crate.

use serde_json::Value;

use super::error::OutgoingError;

/// The validator of a registration's `schema`; 400 `invalid_schema` if it is none.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, OutgoingError> {
    jsonschema::validator_for(schema).map_err(|e| {
        OutgoingError::invalid(
            "invalid_schema",
            format!("schema is not a valid JSON Schema: {e}"),
        )
    })
}

/// Refuses `data` (`null` when the trigger gave none) with 400 `schema_violation`
/// naming where the first mismatch is.
pub fn check(validator: &jsonschema::Validator, data: &Value) -> Result<(), OutgoingError> {
    let Some(error) = validator.iter_errors(data).next() else {
        return Ok(());
    };
    let path = error.instance_path().to_string();
    let at = if path.is_empty() { "/".into() } else { path };
    Err(OutgoingError::invalid(
        "schema_violation",
        format!("data does not match the registered schema at {at}: {error}"),
    ))
}

//! Tests that need a service `make test` starts (moto, the SMTP sink, the
//! test venv's Python) skip with a message when run outside it, so a plain
//! `cargo test` is green on a fresh clone. `tests/run.sh` sets
//! `HOOKFLOW_TEST_REQUIRE_SERVICES=1`: there a missing service fails the test,
//! so nothing is silently skipped where everything is meant to run.

/// Set by `tests/run.sh`: a test whose service is missing fails instead of skipping.
pub const REQUIRE_SERVICES: &str = "HOOKFLOW_TEST_REQUIRE_SERVICES";

/// The values of `vars` (all set) for a test that needs `service`, or `None`
/// after printing why the test is skipped. Panics instead when
/// [`REQUIRE_SERVICES`] is set.
pub fn service_env<const N: usize>(service: &str, vars: [&str; N]) -> Option<[String; N]> {
    let values = vars.map(|name| std::env::var(name).ok());
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap_or_default));
    }
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    skip_without(service, &format!("{} unset", missing.join(", ")));
    None
}

/// Reports that a test cannot run because `service` is missing (`why`):
/// skips with a message, or panics when [`REQUIRE_SERVICES`] is set.
pub fn skip_without(service: &str, why: &str) {
    let message = format!("needs {service} ({why}): run the tests with `make test`");
    if std::env::var_os(REQUIRE_SERVICES).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_variables_are_returned_in_order() {
        // PATH and CARGO are set for every test run by cargo.
        let [path, cargo] = service_env("anything", ["PATH", "CARGO"]).expect("both set");
        assert_eq!(path, std::env::var("PATH").unwrap());
        assert_eq!(cargo, std::env::var("CARGO").unwrap());
    }

    #[test]
    fn a_missing_variable_skips_or_fails_as_run_sh_asks() {
        let required =
            std::env::var_os(REQUIRE_SERVICES).is_some_and(|v| !v.is_empty() && v != "0");
        let outcome = std::panic::catch_unwind(|| {
            service_env("a service", ["HOOKFLOW_TEST_NEVER_SET_ANYWHERE"])
        });
        match outcome {
            Ok(value) => {
                assert!(!required, "skipped although {REQUIRE_SERVICES} is set");
                assert_eq!(value, None);
            }
            Err(_) => assert!(required, "failed although {REQUIRE_SERVICES} is unset"),
        }
    }
}

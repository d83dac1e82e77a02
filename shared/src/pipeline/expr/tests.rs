use super::*;
use crate::pipeline::budget::{MAX_TEXT_BYTES, RunLimits};
use proptest::prelude::*;
use serde_json::json;

fn eval(text: &str, body: Value) -> Result<Value, TemplateError> {
    let vars = json!({"greeting": "hi", "n": 2})
        .as_object()
        .unwrap()
        .clone();
    Template::parse(text)?.evaluate(&Scope {
        body: &body,
        vars: &vars,
        budget: &Budget::start(RunLimits::default()),
    })
}

#[test]
fn whole_expressions_keep_their_type() {
    let body = json!({"payload": {"n": 3, "obj": {"a": [1, 2]}}, "origin": "aGVsbG8gd29ybGQ="});
    assert_eq!(
        eval("${body.payload.obj}", body.clone()).unwrap(),
        json!({"a": [1, 2]})
    );
    assert_eq!(eval("#{body.payload.n}", body.clone()).unwrap(), json!(3));
    assert_eq!(
        eval("${body.payload.obj.a[1]}", body.clone()).unwrap(),
        json!(2)
    );
    assert_eq!(
        eval("${@convert.fromBase64(body.origin)}", body.clone()).unwrap(),
        json!("hello world")
    );
    assert_eq!(
        eval(
            "${@text.upperCase(@convert.fromBase64(body.origin))}",
            body.clone()
        )
        .unwrap(),
        json!("HELLO WORLD")
    );
    assert_eq!(
        eval("${body.missing.deeper}", body.clone()).unwrap(),
        Value::Null
    );
}

#[test]
fn text_interpolation() {
    let body = json!({"name": "Ada", "n": 2, "o": {"k": true}});
    assert_eq!(
        eval("Hello ${body.name}!", body.clone()).unwrap(),
        json!("Hello Ada!")
    );
    assert_eq!(
        eval("n=#{body.n} o=${body.o} x=${body.none}.", body.clone()).unwrap(),
        json!("n=2 o={\"k\":true} x=.")
    );
    assert_eq!(
        eval("costs $5 #1 {x}", body.clone()).unwrap(),
        json!("costs $5 #1 {x}")
    );
    assert_eq!(eval("${'}'}", body).unwrap(), json!("}"));
}

#[test]
fn operators() {
    let body = json!({"a": 5, "s": "x", "f": 1.5});
    for (text, want) in [
        ("${body.a + 1}", json!(6)),
        ("${body.f + 1}", json!(2.5)),
        ("${body.s + body.a}", json!("x5")),
        ("${'a' + null}", json!("a")),
        ("${body.a > 4 and body.s == 'x'}", json!(true)),
        ("${body.a < 4 || !(body.s != 'x')}", json!(true)),
        ("${body.a == 5.0}", json!(true)),
        ("${'b' >= 'a'}", json!(true)),
        ("${vars.greeting + var.n}", json!("hi2")),
        (
            "${@convert.toJson(body)}",
            json!("{\"a\":5,\"s\":\"x\",\"f\":1.5}"),
        ),
        ("${@convert.fromJson('{\"k\": [1]}').k[0]}", json!(1)),
        ("${vars['greeting']}", json!("hi")),
        ("${vars}", json!({"greeting": "hi", "n": 2})),
        (
            "${@convert.toBase64('hello world')}",
            json!("aGVsbG8gd29ybGQ="),
        ),
        ("${@text.lowerCase('ABC')}", json!("abc")),
        ("${'it''s'}", json!("it's")),
    ] {
        assert_eq!(eval(text, body.clone()).unwrap(), want, "{text}");
    }
}

#[test]
fn errors_name_the_expression() {
    let body = json!({"o": {}, "t": "%%%"});
    for (text, fragment) in [
        ("${body.o + 1}", "cannot add"),
        ("${body.o < 1}", "cannot compare"),
        ("${@convert.fromBase64(body.t)}", "not valid base64"),
        ("${@convert.fromJson(body.t)}", "not valid JSON"),
        ("${!body.t}", "needs a boolean"),
    ] {
        let err = eval(&format!("x {text}"), body.clone()).unwrap_err();
        assert_eq!(err.expression, text);
        assert!(err.reason.contains(fragment), "{text}: {}", err.reason);
    }
    for (text, fragment) in [
        ("${body.}", "property name"),
        ("${env.HOME}", "unknown name 'env'"),
        ("${@os.exec('ls')}", "unknown utility"),
        ("${1 < 2 < 3}", "chained"),
        ("${body.a", "missing '}'"),
        ("${'open}", "unterminated"),
        ("${}", "incomplete"),
        ("${@convert.toJson(body, body)}", "one argument"),
    ] {
        let err = Template::parse(text).unwrap_err();
        assert!(err.reason.contains(fragment), "{text}: {}", err.reason);
    }
    let deep = format!("${{{}1{}}}", "(".repeat(200), ")".repeat(200));
    assert!(
        Template::parse(&deep)
            .unwrap_err()
            .reason
            .contains("deeply")
    );
}

#[test]
fn produced_text_is_bounded() {
    let big = "x".repeat(MAX_TEXT_BYTES / 2 + 1);
    let body = json!({ "big": big });
    assert!(
        eval("${body.big + body.big}", body)
            .unwrap_err()
            .reason
            .contains("exceed")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(template) = Template::parse(&text) {
            let body = json!({"a": [1, {"b": "c"}], "origin": "aGk="});
            let vars = Map::new();
            let budget = Budget::start(RunLimits::default());
            let _ = template.evaluate(&Scope { body: &body, vars: &vars, budget: &budget });
        }
    }

    #[test]
    fn expression_shaped_text_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("${"), Just("#{"), Just("}"), Just("body"), Just("vars"), Just("."), Just("a"),
                Just("["), Just("]"), Just("("), Just(")"), Just("'x'"), Just("\""), Just("1"), Just("2.5"),
                Just("+"), Just("=="), Just("<"), Just("!"), Just("and"), Just("or"), Just("@convert"),
                Just(".fromBase64"), Just(".fromJson"), Just("@text.upperCase"), Just(","), Just(" "),
                Just("null"), Just("true"),
            ],
            0..40,
        )
    ) {
        let text: String = parts.concat();
        if let Ok(template) = Template::parse(&text) {
            let body = json!({"a": [1, {"b": "c"}], "origin": "aGk="});
            let vars = Map::new();
            let budget = Budget::start(RunLimits::default());
            let _ = template.evaluate(&Scope { body: &body, vars: &vars, budget: &budget });
        }
    }
}

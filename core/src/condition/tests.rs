use super::*;
use crate::limits::MAX_CONDITION_TERMS;

fn json(text: &str) -> Value {
    Value::parse(text.as_bytes()).unwrap()
}

fn check(cond: &str, doc: &Value) -> bool {
    Condition::parse(cond).unwrap().matches(doc, &[])
}

#[test]
fn truthiness_table() {
    let doc = json(
        r#"{"t": true, "f": false, "s": "x", "e": "", "sf": "false", "n": 2, "z": 0, "o": {}, "a": [], "nul": null}"#,
    );
    for (path, expect) in [
        ("t", true),
        ("f", false),
        ("s", true),
        ("e", false),
        ("sf", false),
        ("n", true),
        ("z", false),
        ("o", true),
        ("a", true),
        ("nul", false),
        ("missing", false),
    ] {
        assert_eq!(check(path, &doc), expect, "{path}");
        assert_eq!(check(&format!("$.{path}"), &doc), expect, "$.{path}");
    }
}

#[test]
fn typed_comparisons() {
    let doc = json(
        r#"{"level": "error", "code": 200, "big": 12345678901234567890, "ok": true, "n": null}"#,
    );
    assert!(check("$.level == 'error'", &doc));
    assert!(check("level == \"error\"", &doc));
    assert!(!check("$.code == '200'", &doc));
    assert!(check("$.code != '200'", &doc));
    assert!(check("$.code == 200", &doc));
    assert!(check("$.code >= 200 && $.code < 300", &doc));
    assert!(check("$.level > 'debug'", &doc));
    assert!(check("$.ok == true", &doc));
    assert!(!check("$.ok > false", &doc));
    assert!(check("$.n == null", &doc));
    assert!(check("$.missing == null", &doc));
    assert!(check("$.missing != 'x'", &doc));
    assert!(check("$.level != 'info'", &doc));
    assert!(check("big > 1e19", &doc));
}

#[test]
fn boolean_structure() {
    let doc = json(r#"{"a": true, "b": false, "c": 1}"#);
    assert!(check("!b", &doc));
    assert!(check("a && !b", &doc));
    assert!(check("b || c == 1", &doc));
    assert!(!check("!(a || b)", &doc));
    assert!(check("(a || b) && (c > 0)", &doc));
    assert!(check("a&&c==1", &doc));
    assert!(check("$['a'] && $.c!=2", &doc));
}

#[test]
fn bad_conditions_are_rejected() {
    for bad in [
        "", "a ==", "a == b c", "(a", "a &&", "== 1", "a == 'x", "$..x", "a b",
    ] {
        assert!(Condition::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn nesting_beyond_the_limit_is_refused_not_a_stack_overflow() {
    let deep = format!("{}a{}", "(".repeat(2000), ")".repeat(2000));
    let err = Condition::parse(&deep).unwrap_err().to_string();
    assert!(err.contains("nest more than 32 deep"), "{err}");
    let nots = format!("{}a", "!".repeat(10_000));
    let err = Condition::parse(&nots).unwrap_err().to_string();
    assert!(err.contains("nest more than 32 deep"), "{err}");
    let ok = format!("{}a{}", "(".repeat(32), ")".repeat(32));
    assert!(check(&ok, &json(r#"{"a": 1}"#)));
}

#[test]
fn long_chains_are_bounded_and_evaluate_flat() {
    let terms: Vec<String> = (0..MAX_CONDITION_TERMS).map(|i| format!("a{i}")).collect();
    let doc = json(r#"{"a0": 1}"#);
    // 256 tests joined by || is allowed and does not recurse per term.
    assert!(check(&terms.join(" || "), &doc));
    assert!(!check(&terms.join(" && "), &doc));
    let too_many = format!("{} || b", terms.join(" || "));
    let err = Condition::parse(&too_many).unwrap_err().to_string();
    assert!(err.contains("at most 256"), "{err}");
    let huge = "a && ".repeat(200_000) + "a";
    let err = Condition::parse(&huge).unwrap_err().to_string();
    assert!(err.contains("bytes long"), "{err}");
    assert!(err.len() < 400, "the error quotes only the start: {err}");
}

#[test]
fn a_lone_operator_character_is_an_error_not_a_hang() {
    for text in ["a & b", "a | b", "a = 1", ".:'&$,<"] {
        assert!(Condition::parse(text).is_err(), "{text}");
    }
}

#[test]
fn metadata_paths_read_the_message_metadata() {
    let doc = json(r#"{"metadata": {"topic": "from-the-document"}, "n": 1}"#);
    let meta: Vec<(String, String)> = [
        ("topic", "orders"),
        ("partition", "3"),
        ("headers.trace-id", "abc"),
        ("headers.replay", "true"),
        ("empty", ""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let on = |cond: &str| Condition::parse(cond).unwrap().matches(&doc, &meta);
    assert!(on("metadata.topic == 'orders'"));
    assert!(
        on("$.metadata.topic == 'from-the-document'"),
        "JSONPath reads the document"
    );
    assert!(on("metadata.partition == 3 && metadata.partition > 2.5"));
    assert!(!on("metadata.partition == '03'"), "strings compare as text");
    assert!(on("metadata.headers.trace-id"));
    assert!(on(
        "metadata.headers.replay == true && metadata.headers.replay != false"
    ));
    assert!(!on("metadata.empty"), "empty text is falsy");
    assert!(!on("metadata.missing"));
    assert!(on("metadata.missing == null && metadata.missing != 'x'"));
    assert!(on("!metadata.missing && n == 1"));
    assert!(
        !on("metadata.topic > 5"),
        "text that is no number against a number"
    );
    assert!(Condition::parse("metadata. == 1").is_err());
}

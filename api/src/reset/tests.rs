use super::*;

fn spec(yaml: &str) -> DataFlowSpec {
    serde_norway::from_str(yaml).unwrap()
}

fn kafka() -> DataFlowSpec {
    spec("source: {type: kafka, kafka: {brokers: [k:9092], topic: in}}\nsink: {type: stdout}")
}

fn position(text: &str) -> PositionReset {
    ResetRequest::parse(text).unwrap().position
}

fn refusal(text: &str) -> String {
    ResetRequest::parse(text).unwrap_err().to_string()
}

#[test]
fn every_position_reads_as_written() {
    assert_eq!(position("earliest"), PositionReset::Earliest);
    assert_eq!(position(" Latest "), PositionReset::Latest);
    assert_eq!(position("beginning"), PositionReset::Beginning);
    assert_eq!(position("snapshot"), PositionReset::Snapshot);
    assert_eq!(
        position("timestamp:2026-12-01T00:00:00Z"),
        PositionReset::Timestamp(1_796_083_200_000)
    );
    assert_eq!(
        position("timestamp:1796083200000"),
        PositionReset::Timestamp(1_796_083_200_000)
    );
    assert_eq!(
        position("offsets:0=120, 2=7"),
        PositionReset::Offsets(BTreeMap::from([(0, 120), (2, 7)]))
    );
    assert_eq!(
        position("cursor:2026-01-01 00:00:00"),
        PositionReset::Cursor("2026-01-01 00:00:00".into())
    );
}

#[test]
fn a_tag_tells_two_requests_apart_without_changing_the_position() {
    let first = ResetRequest::parse("earliest").unwrap();
    let second = ResetRequest::parse("earliest#2").unwrap();
    assert_eq!(first.position, second.position);
    assert_ne!(first.text, second.text);
    assert_eq!(second.text, "earliest#2");
}

#[test]
fn a_malformed_request_says_what_is_wrong() {
    assert!(refusal("yesterday").contains("use earliest, latest"));
    assert!(refusal("earliest:3").contains("takes no argument"));
    assert!(refusal("timestamp:").contains("neither RFC 3339"));
    assert!(refusal("timestamp:last tuesday").contains("neither RFC 3339"));
    assert!(refusal("timestamp:1969-12-31T00:00:00Z").contains("before 1970"));
    assert!(refusal("timestamp:99999999999999999999").contains("too large"));
    assert!(refusal("offsets:0=1,0=2").contains("partition 0 is listed twice"));
    assert!(refusal("offsets:0=-1").contains("not an offset"));
    assert!(refusal("offsets:x=1").contains("not a partition number"));
    assert!(refusal("offsets:5").contains("<partition>=<offset>"));
    assert!(refusal("cursor:").contains("needs a value"));
}

#[test]
fn a_huge_request_is_refused_before_it_is_read() {
    let long = format!("cursor:{}", "9".repeat(MAX_RESET_BYTES));
    let error = ResetRequest::parse(&long).unwrap_err();
    assert!(
        error.reason.contains("more than the 4096 allowed"),
        "{error}"
    );
    assert!(error.text.len() < 200, "the request is cut in the error");
    let many: Vec<String> = (0..2000).map(|p| format!("{p}=0")).collect();
    let error = ResetRequest::parse(&format!("offsets:{}", many.join(","))).unwrap_err();
    assert!(error.reason.contains("allowed"), "{error}");
}

#[test]
fn a_position_must_fit_the_source() {
    let request = |text: &str| ResetRequest::parse(text).unwrap();
    assert!(request("earliest").check_fits(&kafka()).is_ok());
    assert!(request("offsets:0=1").check_fits(&kafka()).is_ok());
    let error = request("beginning").check_fits(&kafka()).unwrap_err();
    assert!(
        error.reason.contains("a kafka source moves to earliest"),
        "{error}"
    );

    let polling = spec(
        "source: {type: postgresql, postgresql: {connectionString: postgres://x, table: t}}\nsink: {type: stdout}",
    );
    assert!(request("cursor:10").check_fits(&polling).is_ok());
    assert!(request("latest").check_fits(&polling).is_err());

    let in_memory = spec(
        "source: {type: postgresql, postgresql: {connectionString: postgres://x, table: t}}\nsink: {type: stdout}\ncheckpointPersistence: false",
    );
    let error = request("beginning").check_fits(&in_memory).unwrap_err();
    assert!(
        error.reason.contains("checkpointPersistence is false"),
        "{error}"
    );

    let cdc = spec(
        "source: {type: postgresql-cdc, postgresqlCdc: {connectionString: postgres://x, tables: [t]}}\nsink: {type: stdout}",
    );
    assert!(request("snapshot").check_fits(&cdc).is_ok());
    assert!(request("beginning").check_fits(&cdc).is_err());

    let file = spec("source: {type: file, file: {path: a.jsonl}}\nsink: {type: stdout}");
    let error = request("beginning").check_fits(&file).unwrap_err();
    assert!(error.reason.contains("keeps no position"), "{error}");
}

#[test]
fn a_position_prints_as_it_parses() {
    for text in [
        "earliest",
        "latest",
        "timestamp:5",
        "offsets:0=1,3=4",
        "beginning",
        "cursor:a b",
        "snapshot",
    ] {
        assert_eq!(position(text).to_string(), text);
    }
}

#[test]
fn a_manifest_with_a_bad_reset_annotation_does_not_load() {
    let manifest = |value: &str| {
        format!(
            "kind: DataFlow\nmetadata:\n  name: f\n  annotations: {{dataflow.dataflow.io/reset-position: \"{value}\"}}\nspec:\n  source: {{type: kafka, kafka: {{brokers: [k:9092], topic: in}}}}\n  sink: {{type: stdout}}\n"
        )
    };
    assert!(crate::manifest::parse(&manifest("earliest#3")).is_ok());
    let error = crate::manifest::parse(&manifest("cursor:5"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("metadata.annotations[dataflow.dataflow.io/reset-position]: ")
            && error.contains("a kafka source moves to earliest"),
        "{error}"
    );
}

//! `pii-redact`: finds e-mail addresses and payment card numbers in every string
//! (and every long number) of a message, wherever they are, and redacts them.
//!
//! - `jane.doe@example.com` -> `[email]` (or `j***@example.com` with `keepDomain`)
//! - `4111 1111 1111 1111` or `4111111111111111` -> `************1111` (Luhn-checked,
//!   13 to 19 digits, spaces or dashes allowed between digits)
//!
//! Config (all optional): `{"keepDomain": false, "keepLastDigits": 4, "maskChar": "*"}`.

use dataflow_transform_sdk::json::{SmolStr, Value};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    keep_domain: Option<bool>,
    keep_last_digits: Option<usize>,
    mask_char: Option<char>,
}

/// The redaction transform.
pub struct PiiRedact {
    keep_domain: bool,
    keep_last_digits: usize,
    mask_char: char,
}

impl Transform for PiiRedact {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: Config = parse_config(config)?;
        let keep_last_digits = config.keep_last_digits.unwrap_or(4);
        if keep_last_digits > 6 {
            return Err(ConfigError::field(
                "keepLastDigits",
                "at most 6 digits may stay visible",
            ));
        }
        Ok(Self {
            keep_domain: config.keep_domain.unwrap_or(false),
            keep_last_digits,
            mask_char: config.mask_char.unwrap_or('*'),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        self.redact(&mut record.value);
        out.push(record);
        Ok(())
    }
}

impl PiiRedact {
    fn redact(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some(clean) = self.redact_text(text) {
                    *text = SmolStr::from(clean);
                }
            }
            Value::Number(number) => {
                let digits = number.as_str();
                if (13..=19).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && luhn(digits.as_bytes())
                {
                    *value = Value::from(self.mask_digits(digits.as_bytes()));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Returns the redacted text, or `None` when nothing needed redacting.
    fn redact_text(&self, text: &str) -> Option<String> {
        let emails = self.redact_emails(text);
        let current = emails.as_deref().unwrap_or(text);
        match self.redact_cards(current) {
            Some(clean) => Some(clean),
            None => emails,
        }
    }

    fn redact_emails(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while let Some(offset) = text[i..].find('@') {
            let at = i + offset;
            let start = (0..at)
                .rev()
                .take_while(|&j| is_local(bytes[j]))
                .last()
                .unwrap_or(at);
            let end = (at + 1..bytes.len())
                .take_while(|&j| is_domain(bytes[j]))
                .last()
                .map_or(at + 1, |j| j + 1);
            let domain = text[at + 1..end].trim_end_matches(['.', '-']);
            let end = at + 1 + domain.len();
            if start < at && domain.contains('.') && !domain.starts_with('.') {
                out.push_str(&text[copied..start]);
                if self.keep_domain {
                    out.push_str(&text[start..start + 1]);
                    out.extend(std::iter::repeat_n(self.mask_char, 3));
                    out.push_str(&text[at..end]);
                } else {
                    out.push_str("[email]");
                }
                copied = end;
            }
            i = end.max(at + 1);
        }
        (copied > 0).then(|| {
            out.push_str(&text[copied..]);
            out
        })
    }

    fn redact_cards(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
                i += 1;
                continue;
            }
            // Collect digits, allowing one space or dash between digits.
            let mut digits = Vec::with_capacity(19);
            let mut j = i;
            let mut end = i;
            while j < bytes.len() && digits.len() < 20 {
                if bytes[j].is_ascii_digit() {
                    digits.push(bytes[j]);
                    j += 1;
                    end = j;
                } else if (bytes[j] == b' ' || bytes[j] == b'-')
                    && j + 1 < bytes.len()
                    && bytes[j + 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if (13..=19).contains(&digits.len()) && luhn(&digits) {
                out.push_str(&text[copied..i]);
                out.push_str(&self.mask_digits(&digits));
                copied = end;
            }
            i = end.max(i + 1);
        }
        (copied > 0).then(|| {
            out.push_str(&text[copied..]);
            out
        })
    }

    fn mask_digits(&self, digits: &[u8]) -> String {
        let keep = self.keep_last_digits.min(digits.len());
        let mut masked: String = std::iter::repeat_n(self.mask_char, digits.len() - keep).collect();
        masked.extend(digits[digits.len() - keep..].iter().map(|&d| char::from(d)));
        masked
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// The Luhn checksum used by payment card numbers.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

dataflow_transform_sdk::export!(PiiRedact);

#[cfg(test)]
mod tests {
    use super::*;
    use dataflow_transform_sdk::{Message, Outcome, process_batch};

    fn run(config: &str, input: &str) -> String {
        let mut t = PiiRedact::from_config(config).unwrap();
        let out = process_batch(
            &mut t,
            vec![Message {
                payload: input.as_bytes().to_vec(),
                metadata: vec![],
            }],
        );
        match &out[0] {
            Outcome::Emitted(m) => String::from_utf8(m[0].payload.clone()).unwrap(),
            Outcome::Failed(e) => panic!("{e}"),
        }
    }

    #[test]
    fn redacts_anywhere() {
        let input = r#"{"user":{"email":"jane.doe@example.com"},"notes":["call me at jane@corp.io, card 4111 1111 1111 1111 thanks"],"card":"4111-1111-1111-1111","n":4111111111111111,"id":1234567890123}"#;
        assert_eq!(
            run("", input),
            r#"{"user":{"email":"[email]"},"notes":["call me at [email], card ************1111 thanks"],"card":"************1111","n":"************1111","id":1234567890123}"#
        );
    }

    #[test]
    fn keep_domain_and_options() {
        assert_eq!(
            run(
                r#"{"keepDomain":true,"keepLastDigits":0,"maskChar":"x"}"#,
                r#"{"e":"x bob@mail.example.org.","c":"4111111111111111"}"#
            ),
            r#"{"e":"x bxxx@mail.example.org.","c":"xxxxxxxxxxxxxxxx"}"#
        );
    }

    #[test]
    fn leaves_other_text_alone() {
        let input = r#"{"a":"no pii here @ all","b":"1234 5678","c":"user@localhost"}"#;
        assert_eq!(run("", input), input);
    }

    #[test]
    fn bad_config_names_the_key() {
        let err = PiiRedact::from_config(r#"{"keepLastDigits": 9}"#)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("keepLastDigits:"), "{err}");
    }
}

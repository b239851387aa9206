//! Checking `spec.resources` before the operator puts it on a pod: Kubernetes
//! refuses a Deployment whose quantities do not parse, are negative, or ask for
//! more than their limit, and would say so only in the Deployment's events.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Validator;

/// Longest quantity text accepted; Kubernetes' own are a handful of characters.
const MAX_QUANTITY_LEN: usize = 64;

impl Validator {
    pub(super) fn resources(&mut self, path: &str, resources: &ResourceRequirements) {
        let mut values =
            |kind: &str, list: Option<&std::collections::BTreeMap<String, Quantity>>| {
                let mut parsed = Vec::new();
                for (name, quantity) in list.into_iter().flatten() {
                    let at = format!("{path}.{kind}.{name}");
                    match parse_quantity(&quantity.0) {
                        Ok(value) if value < 0.0 => self.fail(
                            &at,
                            format!(
                                "{:?} is negative; a quantity must be zero or more",
                                quantity.0
                            ),
                        ),
                        Ok(value) => parsed.push((name.clone(), value)),
                        Err(reason) => self.fail(&at, format!("{:?} {reason}", quantity.0)),
                    }
                }
                parsed
            };
        let requests = values("requests", resources.requests.as_ref());
        let limits = values("limits", resources.limits.as_ref());
        for (name, request) in &requests {
            if let Some((_, limit)) = limits.iter().find(|(limit_name, _)| limit_name == name)
                && request > limit
            {
                self.fail(
                    &format!("{path}.requests.{name}"),
                    format!("is more than limits.{name}"),
                );
            }
        }
    }
}

/// The value of a Kubernetes quantity (`100m`, `1.5Gi`, `2e3`, `-1`), or why it is not one.
fn parse_quantity(text: &str) -> Result<f64, &'static str> {
    if text.len() > MAX_QUANTITY_LEN {
        return Err("is too long for a quantity");
    }
    let number_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return Err("is not a quantity (a number with an optional suffix such as m, Mi or G)");
    }
    let value: f64 = number
        .parse()
        .map_err(|_| "is not a quantity (a number with an optional suffix such as m, Mi or G)")?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let power = exponent
                .strip_prefix(['e', 'E'])
                .filter(|power| !power.is_empty())
                .and_then(|power| power.parse::<i32>().ok())
                .ok_or("has an unknown suffix (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent)")?;
            10f64.powi(power)
        }
    };
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn kubernetes_quantities_parse() {
        for (text, value) in [
            ("200m", 0.2),
            ("1", 1.0),
            ("1.5", 1.5),
            ("256Mi", 268_435_456.0),
            ("1Gi", 1_073_741_824.0),
            ("2G", 2e9),
            ("2e3", 2000.0),
            ("+3k", 3000.0),
            ("-100m", -0.1),
            (".5", 0.5),
        ] {
            let got = parse_quantity(text).unwrap();
            assert!(
                (got - value).abs() < 1e-9 * value.abs().max(1.0),
                "{text}: {got}"
            );
        }
        for bad in ["", "m", "1.2.3", "10 Mi", "1mi", "1e", "abc", "1Gib", "--1"] {
            assert!(parse_quantity(bad).is_err(), "{bad:?}");
        }
    }
}

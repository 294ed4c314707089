//! Go-style durations (`"24h"`, `"6h30m"`, `"1.5h"`, `"90s"`), the format of
//! `backup.schedule` in thrum's config.

use std::time::Duration;

/// Parse a Go duration string. Negative durations are refused (a schedule cannot be).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {text:?}"));
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}")),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in duration {text:?} (use h, m, s, ms)"
                ));
            }
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration {text:?} is out of range"))
}

/// Format like Go's `time.Duration.String` for whole seconds: `24h0m0s`, `1m30s`, `45s`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac > 0 {
        format!("{s}.{frac:03}").trim_end_matches('0').to_owned()
    } else {
        s.to_string()
    };
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("24h", 86_400.0),
            ("6h30m", 23_400.0),
            ("1.5h", 5_400.0),
            ("90s", 90.0),
            ("1h0m0s", 3_600.0),
            ("500ms", 0.5),
            ("0", 0.0),
        ];
        for (text, secs) in cases {
            assert_eq!(parse(text).unwrap().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "h", "5", "5x", "-1h", "1h-", "abc", "1..5h"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(86_400)), "24h0m0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(5)), "5s");
    }
}

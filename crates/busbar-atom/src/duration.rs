//! ISO 8601 durations as the API carries them (`PT1M`, `P1D`, `PT0.5S`), and .NET's
//! `TimeSpan.MaxValue` (`P10675199DT2H48M5.4775807S`) as "never". Clients send the maximum
//! slightly mangled (Python: `P10675199DT2H48M5.477539S`), so anything from about that many
//! days up counts as never.

use std::time::Duration;

/// How the API writes "never" (.NET's `TimeSpan.MaxValue`).
pub const INFINITE: &str = "P10675199DT2H48M5.4775807S";

/// Durations from this many days up mean "never".
const INFINITE_FROM_DAYS: u64 = 10_675_199;

const SECS_PER_DAY: u64 = 86_400;

/// Reads an ISO 8601 duration: `None` for "never" (or anything that long).
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let duration = parse_exact(text)
        .map_err(|reason| format!("'{text}' is not an ISO 8601 duration ({reason})"))?;
    if duration.as_secs() >= INFINITE_FROM_DAYS * SECS_PER_DAY {
        return Ok(None);
    }
    Ok(Some(duration))
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses an ISO 8601 duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`, e.g. `PT1M`, `P14D`,
/// `PT1H30M`, `P1DT2H`, `PT0.5S`. A year counts as 365 days and a month as 30, as .NET's
/// `XmlConvert.ToTimeSpan` does; the last component may carry a fraction (`.` or `,`).
/// Negative durations are rejected.
pub fn parse_exact(text: &str) -> Result<Duration, String> {
    const DAY: u128 = 86_400 * NANOS_PER_SECOND;
    let text = text.trim();
    if text.starts_with('-') {
        return Err("negative durations are not allowed".to_owned());
    }
    let rest = text
        .strip_prefix(['P', 'p'])
        .ok_or_else(|| "it must start with 'P'".to_owned())?;

    let mut total: u128 = 0;
    let mut in_time = false;
    let mut saw_time_component = false;
    let mut components = 0;
    let mut fraction_seen = false;
    // Designators must appear in this order; the index only moves forward.
    let mut last_rank: Option<usize> = None;
    let mut chars = rest.char_indices().peekable();

    while let Some(&(start, c)) = chars.peek() {
        if c == 'T' || c == 't' {
            if in_time {
                return Err("'T' appears twice".to_owned());
            }
            in_time = true;
            chars.next();
            continue;
        }
        if fraction_seen {
            return Err("only the last component may have a fraction".to_owned());
        }
        // Number: digits, optionally a fraction.
        let mut end = start;
        let mut fraction_at = None;
        while let Some(&(index, c)) = chars.peek() {
            if c.is_ascii_digit() {
                end = index + 1;
                chars.next();
            } else if (c == '.' || c == ',') && fraction_at.is_none() {
                fraction_at = Some(index);
                end = index + 1;
                chars.next();
            } else {
                break;
            }
        }
        let number = rest.get(start..end).unwrap_or_default();
        let Some((_, designator)) = chars.next() else {
            return Err(format!("'{number}' has no unit designator"));
        };
        let (whole, fraction) = match fraction_at {
            Some(at) => (
                rest.get(start..at).unwrap_or_default(),
                rest.get(at + 1..end).unwrap_or_default(),
            ),
            None => (number, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(format!("'{designator}' has no number before it"));
        }
        if fraction_at.is_some() && fraction.is_empty() {
            return Err(format!("'{number}' has no digits after the decimal mark"));
        }

        let (rank, unit) = match (in_time, designator.to_ascii_uppercase()) {
            (false, 'Y') => (0, 365 * DAY),
            (false, 'M') => (1, 30 * DAY),
            (false, 'W') => (2, 7 * DAY),
            (false, 'D') => (3, DAY),
            (true, 'H') => (4, 3_600 * NANOS_PER_SECOND),
            (true, 'M') => (5, 60 * NANOS_PER_SECOND),
            (true, 'S') => (6, NANOS_PER_SECOND),
            (false, 'H' | 'S') => {
                return Err(format!("'{designator}' must come after 'T'"));
            }
            _ => return Err(format!("unknown unit designator '{designator}'")),
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(format!("'{designator}' is out of order or repeated"));
        }
        last_rank = Some(rank);

        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("'{whole}' is too large"))?
        };
        // Beyond nanosecond precision extra fraction digits can't matter.
        let fraction = fraction.get(..fraction.len().min(18)).unwrap_or_default();
        let fraction_nanos = if fraction.is_empty() {
            0
        } else {
            let numerator: u128 = fraction
                .parse()
                .map_err(|_| format!("'{fraction}' is not a number"))?;
            numerator * unit / 10u128.pow(fraction.len() as u32)
        };
        total = whole
            .checked_mul(unit)
            .and_then(|value| value.checked_add(fraction_nanos))
            .and_then(|value| value.checked_add(total))
            .ok_or_else(|| "it is too long".to_owned())?;
        fraction_seen = fraction_at.is_some();
        components += 1;
        saw_time_component |= in_time;
    }

    if in_time && !saw_time_component {
        return Err("'T' must be followed by at least one time component".to_owned());
    }
    if components == 0 {
        return Err("it has no components".to_owned());
    }
    let seconds =
        u64::try_from(total / NANOS_PER_SECOND).map_err(|_| "it is too long".to_owned())?;
    // The remainder is below one billion, so it fits in u32.
    let nanos = u32::try_from(total % NANOS_PER_SECOND).unwrap_or(0);
    Ok(Duration::new(seconds, nanos))
}

/// Writes a duration the way the service does (`PT1M`, `P1DT2H`, `PT0.5S`), "never" as
/// [`INFINITE`].
pub fn format(duration: Option<Duration>) -> String {
    let Some(duration) = duration else {
        return INFINITE.to_owned();
    };
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / SECS_PER_DAY,
        total % SECS_PER_DAY / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    let mut text = String::from("P");
    if days > 0 {
        text.push_str(&format!("{days}D"));
    }
    let nanos = duration.subsec_nanos();
    if hours == 0 && minutes == 0 && seconds == 0 && nanos == 0 {
        if days == 0 {
            text.push_str("T0S");
        }
        return text;
    }
    text.push('T');
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || nanos > 0 {
        text.push_str(&seconds.to_string());
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text.push('S');
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_clients_send() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse("PT1M").unwrap(), secs(60));
        assert_eq!(parse("PT45S").unwrap(), secs(45));
        assert_eq!(parse("P1D").unwrap(), secs(86_400));
        assert_eq!(parse("PT2H").unwrap(), secs(7_200));
        assert_eq!(parse("P1DT1H1M1S").unwrap(), secs(90_061));
        assert_eq!(parse("PT0.5S").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(parse(INFINITE).unwrap(), None);
        assert_eq!(parse("P10675199DT2H48M5.477539S").unwrap(), None);
        assert_eq!(parse("P99999999D").unwrap(), None);
        for bad in [
            "", "P", "PT", "1M", "PTM", "PT1X", "P1H", "PT1S1M", "00:01:00", "-PT1M",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn writes_the_service_form() {
        for (secs, text) in [
            (60, "PT1M"),
            (45, "PT45S"),
            (86_400, "P1D"),
            (90_061, "P1DT1H1M1S"),
            (0, "PT0S"),
            (600, "PT10M"),
        ] {
            assert_eq!(format(Some(Duration::from_secs(secs))), text);
            assert_eq!(parse(text).unwrap(), Some(Duration::from_secs(secs)));
        }
        assert_eq!(format(Some(Duration::from_millis(1_500))), "PT1.5S");
        assert_eq!(format(None), INFINITE);
    }
}
